package server

import (
	"context"
	"os"
	"strconv"

	"github.com/gatehouse-iot/gatehouse/registry"
)

// startWebhooks starts this node's event delivery worker; it stops when ctx
// ends. Every node runs one: a lease on each webhook's row makes sure one
// node at a time delivers it.
//
// The node name in the lease is the host name and process ID, so that an
// operator can tell from the database which node holds a webhook.
func (s *Server) startWebhooks(ctx context.Context) {
	cfg := registry.WebhookConfig{Node: nodeName()}
	go s.registry.RunWebhooks(ctx, cfg)
}

func nodeName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "gatehouse"
	}
	return h + "/" + strconv.Itoa(os.Getpid())
}
