package coapapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/registry"
	"github.com/gatehouse-iot/gatehouse/server"
)

// TestLibcoapCertificateBlockwise drives Debian's libcoap client over DTLS
// with the device's operational certificate (not a PSK), and reads a
// desired configuration of several kilobytes, which the server sends
// block-wise (RFC 7959 Block2) and libcoap reassembles.
func TestLibcoapCertificateBlockwise(t *testing.T) {
	bin, err := exec.LookPath("coap-client-openssl")
	if err != nil {
		t.Fatal("coap-client-openssl (libcoap3-bin) not installed; scripts/test installs it")
	}
	e := startEnv(t, server.Config{})
	ctx := context.Background()
	if _, err := e.admin.CreateDevice(ctx, "default", registry.DeviceCreate{ID: "lib-cert"}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile, csrFile := filepath.Join(dir, "k.pem"), filepath.Join(dir, "csr.pem")
	for _, args := range [][]string{
		{"ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", keyFile},
		{"req", "-new", "-key", keyFile, "-subj", "/CN=lib-cert", "-out", csrFile},
	} {
		if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v: %s", args[0], err, out)
		}
	}
	csr, _ := os.ReadFile(csrFile)
	iss, err := e.admin.IssueCertificate(ctx, "default", "lib-cert", csr)
	if err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(certFile, []byte(iss.Certificate+iss.Chain), 0o600); err != nil {
		t.Fatal(err)
	}
	// A configuration far larger than one CoAP block (1024 bytes).
	big := map[string]string{}
	for i := range 60 {
		big[strings.Repeat("k", 8)+string(rune('a'+i%26))+string(rune('a'+i/26))] = strings.Repeat("v", 80)
	}
	patch, _ := json.Marshal(map[string]any{"config": big})
	if _, err := e.admin.PatchDevice(ctx, "default", "lib-cert", patch, ""); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "cfg.json")
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, bin, "-B", "10", "-c", certFile, "-j", keyFile, "-C", filepath.Join(e.dir, server.CAFile),
		"-v", "7", "-A", "50", "-m", "get", "-o", out, "coaps://"+e.addr+"/cfg")
	trace, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("libcoap with a certificate: %v: %s", err, trace)
	}
	// libcoap's trace shows the Block2 options of the server's answers.
	// 5,761 bytes in 1,024-byte blocks: six answers, each with Block2.
	// (libcoap may retransmit a request, so count at least, not exactly.)
	if n := bytes.Count(trace, []byte("Block2:5/")); n < 1 || bytes.Count(trace, []byte("Block2:0/M/1024")) < 1 {
		t.Errorf("the configuration did not come block-wise (%d Block2 options in libcoap's trace)", n)
	}
	raw, _ := os.ReadFile(out)
	var got map[string]string
	if err := json.Unmarshal(bytes.TrimSpace(raw), &got); err != nil || len(raw) < 2048 {
		t.Fatalf("config read over DTLS with a certificate: %d bytes, %v: %.200s", len(raw), err, raw)
	}
	if len(got) != len(big) {
		t.Errorf("config has %d keys, want %d", len(got), len(big))
	}
	// A revoked certificate is refused at the next handshake's request.
	if _, err := e.admin.RevokeCertificate(ctx, "default", iss.Serial, "keyCompromise"); err != nil {
		t.Fatal(err)
	}
	cmd = exec.CommandContext(cctx, bin, "-B", "5", "-c", certFile, "-j", keyFile, "-C", filepath.Join(e.dir, server.CAFile),
		"-A", "50", "-m", "get", "coaps://"+e.addr+"/cfg")
	b, _ := cmd.CombinedOutput()
	if bytes.Contains(b, []byte("vvvvvvvv")) {
		t.Errorf("a revoked certificate still reads the config: %.200s", b)
	}
}
