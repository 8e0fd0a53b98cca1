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

// Once provisioned, a device connects to the broker with its certificate,
// applies the configuration it is sent and reports its properties.
func ExampleClient_Connect() {
	c, err := deviceclient.New(deviceclient.Config{
		ServerURL:      "https://gatehouse.example.com:8443",
		RegistrationID: "meter-9",
		Credentials:    deviceclient.Credentials{BootstrapToken: os.Getenv("BOOTSTRAP_TOKEN")},
		Store:          deviceclient.FileStore{Path: "/var/lib/meter/identity.json"},
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	id, err := c.Provision(ctx)
	if err != nil {
		log.Fatal(err)
	}
	s, err := c.Connect(ctx, id)
	if err != nil {
		log.Fatal(err) // a refusal here (a revoked certificate) is not retried
	}
	defer s.Close()
	config, err := s.Config(ctx) // sent at connect, then at each change
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("configuration: %s\n", config)
	// Acknowledged once the registry has stored it.
	if err := s.Report(ctx, map[string]any{"firmware": "2.1.0", "uptimeHours": 12}); err != nil {
		log.Print(err)
	}
}

// A device tries MQTT first, then HTTPS, then CoAP: a transport failure
// (nothing listening, a timeout, 5xx) moves it on to the next protocol at
// once; a refusal (a wrong key, a disabled enrollment) stops it. The
// identity records the protocol that worked.
func ExampleConfig_protocols() {
	deviceKey, _ := os.ReadFile("/etc/gatehouse/device.key") // derived at the factory
	c, err := deviceclient.New(deviceclient.Config{
		ServerURL:      "https://gatehouse.example.com:8443",
		MQTTAddr:       "gatehouse.example.com:8883", // the default: ServerURL's host, 8883
		CoAPAddr:       "gatehouse.example.com:5684", // the default: ServerURL's host, 5684
		RegistrationID: "sensor-42",
		Protocols:      []deviceclient.Protocol{deviceclient.DPSMQTT, deviceclient.Native, deviceclient.CoAP},
		Credentials:    deviceclient.Credentials{SymmetricKey: deviceKey},
		ConnectTimeout: 5 * time.Second,
		OnFallback: func(from, to deviceclient.Protocol, err error) {
			log.Printf("provisioning over %s failed (%v); trying %s", from, err, to)
		},
		Store: deviceclient.FileStore{Path: "/var/lib/sensor/identity.json"},
	})
	if err != nil {
		log.Fatal(err)
	}
	id, err := c.Provision(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("provisioned over", id.Protocol)
}

// A constrained device provisions over CoAP with DTLS: its PSK identity is
// {scope}/{registrationId} ({scope}/{enrollmentId}/{registrationId} with
// EnrollmentID), its key the one derived from the group key. EST-coaps
// (ESTCoAP) works the same way and renews over sren.
func ExampleConfig_coap() {
	groupKey, _ := os.ReadFile("/etc/gatehouse/group.key")
	c, _ := deviceclient.New(deviceclient.Config{
		ServerURL:      "https://gatehouse.example.com:8443",
		RegistrationID: "meter-9",
		EnrollmentID:   "meters",
		Protocol:       deviceclient.CoAP,
		Credentials:    deviceclient.Credentials{GroupKey: groupKey},
	})
	id, err := c.Provision(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(id.DeviceID, id.NotAfter)
}

// A device with a factory certificate provisions over the native MQTT
// dialect: CONNECT as {scope}/{registrationId} presenting the certificate,
// one request with the CSR, one answer with the operational certificate.
func ExampleConfig_mqtt() {
	factory, err := tls.LoadX509KeyPair("/etc/gatehouse/factory.pem", "/etc/gatehouse/factory.key")
	if err != nil {
		log.Fatal(err)
	}
	c, _ := deviceclient.New(deviceclient.Config{
		ServerURL:      "https://gatehouse.example.com:8443",
		RegistrationID: "gateway-7",
		Protocol:       deviceclient.NativeMQTT,
		Credentials:    deviceclient.Credentials{FactoryCertificate: &factory},
	})
	id, err := c.Provision(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(id.DeviceID, "config", string(id.Config))
}
