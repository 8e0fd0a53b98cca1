package mqttapi

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"testing"
	"time"
)

// recordConn reads from r and records what is written to it.
type recordConn struct {
	net.Conn
	r       io.Reader
	written bytes.Buffer
}

func (c *recordConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *recordConn) Write(p []byte) (int, error) { return c.written.Write(p) }

// chunked returns at most n bytes per Read, so that packets straddle reads.
type chunked struct {
	b []byte
	n int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), c.n, len(c.b))
	copy(p, c.b[:k])
	c.b = c.b[k:]
	return k, nil
}

func mqttPacket(typ byte, body []byte) []byte {
	out := []byte{typ}
	n := len(body)
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		out = append(out, b)
		if n == 0 {
			break
		}
	}
	return append(out, body...)
}

func connectPacket(version byte) []byte {
	return mqttPacket(0x10, []byte{0, 4, 'M', 'Q', 'T', 'T', version, 0x02, 0, 30, 0, 1, 'x'})
}

func TestConnPacketSize(t *testing.T) {
	const max = 300
	small := mqttPacket(0x30, append([]byte{0, 1, 'a'}, make([]byte, 200)...))
	exact := mqttPacket(0x30, append([]byte{0, 1, 'a'}, make([]byte, max-3-3)...)) // 1 + 2 length bytes + body = max
	large := mqttPacket(0x30, append([]byte{0, 1, 'a'}, make([]byte, 400)...))
	if len(exact) != max {
		t.Fatalf("exact packet is %d bytes, want %d", len(exact), max)
	}
	for _, tt := range []struct {
		name       string
		stream     []byte
		wantErr    bool
		wantOnWire []byte // what the client is sent
	}{
		{"small packets pass", cat(connectPacket(5), small, small, mqttPacket(0xC0, nil)), false, nil},
		{"a packet of exactly the limit passes", cat(connectPacket(5), exact), false, nil},
		{"MQTT 5: too large gets DISCONNECT 0x95", cat(connectPacket(5), small, large), true, disconnectTooLarge},
		{"MQTT 3.1.1: too large closes", cat(connectPacket(4), large), true, nil},
		{"a CONNECT over the limit closes", mqttPacket(0x10, make([]byte, 500)), true, nil},
	} {
		for _, step := range []int{1, 2, 7, 1 << 20} {
			rc := &recordConn{r: &chunked{b: tt.stream, n: step}}
			c := newConn(rc, max)
			got, err := io.ReadAll(c)
			if tt.wantErr {
				if !errors.Is(err, errPacketTooLarge) {
					t.Errorf("%s (reads of %d): err %v, want errPacketTooLarge", tt.name, step, err)
				}
			} else if err != nil || !bytes.Equal(got, tt.stream) {
				t.Errorf("%s (reads of %d): read %d of %d bytes, err %v", tt.name, step, len(got), len(tt.stream), err)
			}
			if !bytes.Equal(rc.written.Bytes(), tt.wantOnWire) {
				t.Errorf("%s (reads of %d): sent % x, want % x", tt.name, step, rc.written.Bytes(), tt.wantOnWire)
			}
		}
	}
}

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

// FuzzConnScan: the scanner never panics, and how the stream is cut into
// reads never changes its verdict.
func FuzzConnScan(f *testing.F) {
	f.Add(cat(connectPacket(5), mqttPacket(0x30, make([]byte, 100))), 3)
	f.Add([]byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x7f}, 1)
	f.Fuzz(func(t *testing.T, stream []byte, step int) {
		if step < 1 || step > 64 {
			step = 1
		}
		whole := newConn(&recordConn{r: bytes.NewReader(nil)}, 128)
		okWhole := whole.scan(stream)
		cut := newConn(&recordConn{r: bytes.NewReader(nil)}, 128)
		okCut := true
		for i := 0; i < len(stream) && okCut; i += step {
			okCut = cut.scan(stream[i:min(i+step, len(stream))])
		}
		if okWhole != okCut {
			t.Fatalf("whole stream: %v, in reads of %d: %v", okWhole, step, okCut)
		}
	})
}

// TestReleaseHandshake: after authentication the TLS connection holds no
// peer chain (the fields are cleared by name; a Go release that renames
// them fails here instead of silently costing 7 KB per session).
func TestReleaseHandshake(t *testing.T) {
	cert := testCert(t, "server")
	clientCert := testCert(t, "device")
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	srv := tls.Server(a, &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAnyClientCert})
	cli := tls.Client(b, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{clientCert}})
	errc := make(chan error, 1)
	go func() { errc <- cli.Handshake() }()
	if err := srv.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	c := newConn(srv, 1024)
	if n := len(peerChain(c)); n != 1 {
		t.Fatalf("peer chain before release: %d certificates, want 1", n)
	}
	releaseHandshake(c)
	if n := len(peerChain(c)); n != 0 {
		t.Errorf("peer chain after release: %d certificates, want 0", n)
	}
	// The connection still works both ways.
	go func() {
		cli.Write([]byte("ping"))
		buf := make([]byte, 4)
		io.ReadFull(cli, buf)
		errc <- nil
	}()
	buf := make([]byte, 4)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("read after release: %q, %v", buf, err)
	}
	if _, err := c.Write([]byte("pong")); err != nil {
		t.Fatalf("write after release: %v", err)
	}
	<-errc
}

func testCert(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
