package server

import (
	"os"
	"strconv"
)

// nodeName names this node in webhook delivery leases (every node runs a
// delivery worker; a lease on each webhook's row makes sure one node at a
// time delivers it): the host name and process ID, so that an operator can
// tell from the database which node holds a webhook.
func nodeName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "gatehouse"
	}
	return h + "/" + strconv.Itoa(os.Getpid())
}
