package deviceclient_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/gatehouse-iot/gatehouse/deviceclient"
)

// A device with a key derived from its group's key provisions over the
// native API on its first boot, and reuses its stored identity afterwards.
func ExampleClient_Provision() {
	caPEM, _ := os.ReadFile("/etc/gatehouse/ca.pem")
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	deviceKey, _ := os.ReadFile("/etc/gatehouse/device.key") // derived at the factory

	c, err := deviceclient.New(deviceclient.Config{
		ServerURL:      "https://gatehouse.example.com:8443",
		RegistrationID: "sensor-42",
		Credentials:    deviceclient.Credentials{SymmetricKey: deviceKey},
		RootCAs:        roots,
		Store:          deviceclient.FileStore{Path: "/var/lib/sensor/identity.json"},
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	id, err := c.Provision(ctx)
	if err != nil {
		log.Fatal(err) // *deviceclient.Error says why; permanent errors are not retried
	}
	fmt.Println("device", id.DeviceID, "assigned to", id.AssignedHub)
}

// A device keeps its certificate fresh by calling RenewIfDue now and then:
// it renews once two thirds of the lifetime have passed.
func ExampleClient_RenewIfDue() {
	c, _ := deviceclient.New(deviceclient.Config{
		ServerURL:      "https://gatehouse.example.com:8443",
		RegistrationID: "gateway-7",
		Protocol:       deviceclient.EST,
		Credentials:    deviceclient.Credentials{BootstrapToken: os.Getenv("BOOTSTRAP_TOKEN")},
		Store:          deviceclient.FileStore{Path: "/var/lib/gateway/identity.json"},
	})
	for range time.Tick(time.Hour) {
		id, err := c.RenewIfDue(context.Background())
		if err != nil {
			log.Print(err)
			continue
		}
		cert, _ := id.TLSCertificate()
		_ = &tls.Config{Certificates: []tls.Certificate{cert}} // for MQTT over TLS
	}
}
