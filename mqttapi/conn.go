package mqttapi

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"reflect"
	"unsafe"
)

// conn is a client connection as the broker library reads it. It watches
// the packet boundaries in what the library reads so that a packet over
// the size limit is refused as MQTT 5 asks (DISCONNECT 0x95 packet too
// large) before the library reads it: the library itself only closes the
// connection. It costs a few words per connection and no allocation per
// packet.
type conn struct {
	net.Conn
	tls *tls.Conn // nil for plain TCP
	max uint32    // largest packet, whole (fixed header included)

	// Parser state, only touched by the one goroutine that reads.
	state     uint8  // connHeader, connLength or connBody
	lenBytes  uint8  // bytes of the remaining length read so far
	remaining uint32 // the current packet's remaining length, as read
	mult      uint32
	skip      uint32 // body bytes of the current packet still to pass
	version   uint8  // protocol level, from the CONNECT (5 for MQTT 5)
	seen      uint8  // body bytes of the CONNECT seen (to find its level)
	first     bool   // the current packet is the first (the CONNECT)
	refused   bool   // a packet was refused; every later read fails
}

const (
	connHeader = iota
	connLength
	connBody
)

// errPacketTooLarge ends a connection whose client sent a packet over the
// limit (after a DISCONNECT 0x95 for MQTT 5 clients).
var errPacketTooLarge = errors.New("packet larger than the maximum packet size")

func newConn(c net.Conn, max uint32) *conn {
	cn := &conn{Conn: c, max: max, first: true}
	cn.tls, _ = c.(*tls.Conn)
	return cn
}

// disconnectTooLarge is an MQTT 5 DISCONNECT with reason code 0x95.
var disconnectTooLarge = []byte{0xE0, 0x02, 0x95, 0x00}

func (c *conn) Read(p []byte) (int, error) {
	if c.refused {
		return 0, errPacketTooLarge
	}
	n, err := c.Conn.Read(p)
	if n > 0 && !c.scan(p[:n]) {
		c.refused = true
		if c.version == 5 {
			c.Conn.Write(disconnectTooLarge)
		}
		return 0, errPacketTooLarge
	}
	return n, err
}

// scan follows packet boundaries through b; false when a packet's fixed
// header announces more than the limit.
func (c *conn) scan(b []byte) bool {
	for i := 0; i < len(b); {
		switch c.state {
		case connHeader:
			c.state, c.lenBytes, c.remaining, c.mult = connLength, 0, 0, 1
			i++
		case connLength:
			v := b[i]
			i++
			c.remaining += uint32(v&0x7F) * c.mult
			c.mult *= 128
			c.lenBytes++
			if v&0x80 != 0 && c.lenBytes < 4 {
				continue
			}
			if total := 1 + uint32(c.lenBytes) + c.remaining; total > c.max {
				return false
			}
			c.skip, c.seen = c.remaining, 0
			c.state = connBody
			if c.skip == 0 {
				c.state, c.first = connHeader, false
			}
		case connBody:
			n := uint32(len(b) - i)
			if n > c.skip {
				n = c.skip
			}
			if c.first {
				// CONNECT: protocol name (2-byte length, "MQTT"), then the level.
				for j := uint32(0); j < n; j++ {
					if c.seen == 6 {
						c.version = b[i+int(j)]
					}
					if c.seen < 255 {
						c.seen++
					}
				}
			}
			i += int(n)
			c.skip -= n
			if c.skip == 0 {
				c.state, c.first = connHeader, false
			}
		}
	}
	return true
}

// peerChain returns the TLS client chain, leaf first, or nil.
func peerChain(c net.Conn) []*x509.Certificate {
	var tc *tls.Conn
	switch v := c.(type) {
	case *conn:
		tc = v.tls
	case *tls.Conn:
		tc = v
	}
	if tc == nil {
		return nil
	}
	return tc.ConnectionState().PeerCertificates
}

// releaseHandshake drops what a TLS connection keeps after its handshake
// but an authenticated session never needs again: the parsed peer
// certificate chain (about 7 KB for a device certificate and its issuing
// CA) and the handshake and record buffers' grown capacity. crypto/tls
// has no API for it, so the fields are cleared by name; if a Go release
// renames them nothing is cleared (TestReleaseHandshake then fails).
//
// It must run on the connection's reading goroutine, between reads, after
// the session was authenticated (nothing reads ConnectionState later).
func releaseHandshake(c net.Conn) {
	cn, ok := c.(*conn)
	if !ok || cn.tls == nil {
		return
	}
	v := reflect.ValueOf(cn.tls).Elem()
	if f := v.FieldByName("peerCertificates"); f.IsValid() && f.Type() == reflect.TypeFor[[]*x509.Certificate]() {
		*(*[]*x509.Certificate)(unsafe.Pointer(f.UnsafeAddr())) = nil
	}
	for _, name := range []string{"hand", "rawInput"} {
		if f := v.FieldByName(name); f.IsValid() && f.Type() == reflect.TypeFor[bytes.Buffer]() {
			if b := (*bytes.Buffer)(unsafe.Pointer(f.UnsafeAddr())); b.Len() == 0 {
				*b = bytes.Buffer{}
			}
		}
	}
}
