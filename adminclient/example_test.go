package adminclient_test

import (
	"context"
	"fmt"
	"log"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/adminclient"
	"github.com/gatehouse-iot/gatehouse/registry"
)

func Example() {
	ctx := context.Background()
	c, err := adminclient.New("https://localhost:8443", "gh_...", adminclient.WithCAFile("gatehouse-data/ca.pem"))
	if err != nil {
		log.Fatal(err)
	}
	d, err := c.CreateDevice(ctx, "default", registry.DeviceCreate{ID: "sensor-1", Tags: map[string]string{"site": "berlin"}})
	switch gatehouse.ErrorCode(err) {
	case "":
		fmt.Println("created", d.ID, "etag", d.ETag)
	case gatehouse.EConflict:
		fmt.Println("sensor-1 exists already")
	default:
		log.Fatal(err)
	}

	// Follow the event log from the start, resuming across dropped
	// connections, until ctx ends.
	err = c.StreamEvents(ctx, "default", 0, func(e *gatehouse.Event) error {
		fmt.Println(e.Seq, e.Type, e.Subject)
		return nil
	})
	log.Print(err)
}
