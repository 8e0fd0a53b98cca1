package coapapi_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/server"
)

// TestLibcoap drives Debian's libcoap client (coap-client-openssl) over
// DTLS-PSK: discovery, and EST-coaps crts read block-wise.
func TestLibcoap(t *testing.T) {
	bin, err := exec.LookPath("coap-client-openssl")
	if err != nil {
		t.Fatal("coap-client-openssl (libcoap3-bin) not installed; scripts/test installs it")
	}
	e := startEnv(t, server.Config{})
	g := e.enroll(`{"id":"line-1","type":"group","attestation":{"type":"symmetric_key"}}`)
	// libcoap takes -k as a C string: find a registration ID whose key has
	// no NUL byte.
	var id string
	var key []byte
	for i := 0; ; i++ {
		id = "lib-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		if key = deviceKey(t, g.Attestation.PrimaryKey, id); bytes.IndexByte(key, 0) < 0 && key[len(key)-1] != '\n' {
			break
		}
	}
	run := func(args ...string) ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		return exec.CommandContext(ctx, bin, append([]string{"-B", "8", "-u", "default/" + id, "-k", string(key)}, args...)...).CombinedOutput()
	}
	out, err := run("-m", "get", "coaps://"+e.addr+"/.well-known/core")
	if err != nil || !bytes.Contains(out, []byte(`rt="ace.est.crts"`)) {
		t.Fatalf("libcoap discovery: %v: %s", err, out)
	}
	der := filepath.Join(t.TempDir(), "crts.der")
	if out, err := run("-m", "get", "-o", der, "coaps://"+e.addr+"/.well-known/est/crts"); err != nil {
		t.Fatalf("libcoap crts: %v: %s", err, out)
	}
	b, _ := os.ReadFile(der)
	if chain := parsePKCS7(t, b); len(chain) != 2 {
		t.Errorf("crts via libcoap: %d certificates", len(chain))
	}
	if out, err := exec.Command("openssl", "pkcs7", "-inform", "DER", "-in", der, "-print_certs").CombinedOutput(); err != nil {
		t.Errorf("openssl pkcs7: %v: %s", err, out)
	}
}
