package secret_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/gatehouse-iot/gatehouse/secret"
)

func Example() {
	dir, _ := os.MkdirTemp("", "gatehouse-example")
	defer os.RemoveAll(dir)

	ring, err := secret.LoadOrCreateMasterKey(filepath.Join(dir, "master.key"))
	if err != nil {
		log.Fatal(err)
	}
	blob, err := ring.Seal([]byte("s3cr3t"), []byte("webhook-signing-key"))
	if err != nil {
		log.Fatal(err)
	}
	plaintext, err := ring.Open(blob, []byte("webhook-signing-key"))
	if err != nil {
		log.Fatal(err)
	}
	defer plaintext.Wipe()
	fmt.Println(plaintext, len(plaintext.Reveal()))

	_, err = ring.Open(blob, []byte("another-record"))
	fmt.Println(err != nil)
	// Output:
	// [redacted] 6
	// true
}
