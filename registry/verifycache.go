package registry

import (
	"crypto/sha256"
	"crypto/x509"
	"sync"
	"time"
)

// verifyCache remembers certificate chains that verified against a scope's
// CA, so that a device reconnecting does not cost a signature check each
// time. Only the signature work is cached: the credential's status and the
// device's state are read from the database at every authentication, so a
// revocation still takes effect at once. An entry is keyed by the scope,
// the CA certificate and the leaf, and lapses with the leaf's notAfter; a
// replaced CA (import) has another digest and misses.
type verifyCache struct {
	mu sync.Mutex
	m  map[[32]byte]time.Time
}

const verifyCacheMax = 200_000

func verifyKey(scope string, caCert, leaf *x509.Certificate) [32]byte {
	h := sha256.New()
	h.Write([]byte(scope))
	h.Write([]byte{0})
	ca := sha256.Sum256(caCert.Raw)
	h.Write(ca[:])
	h.Write(leaf.Raw)
	var k [32]byte
	copy(k[:], h.Sum(nil))
	return k
}

func (c *verifyCache) ok(scope string, caCert, leaf *x509.Certificate, now time.Time) bool {
	k := verifyKey(scope, caCert, leaf)
	c.mu.Lock()
	defer c.mu.Unlock()
	until, found := c.m[k]
	return found && now.Before(until) && !now.Before(leaf.NotBefore)
}

func (c *verifyCache) add(scope string, caCert, leaf *x509.Certificate) {
	k := verifyKey(scope, caCert, leaf)
	until := leaf.NotAfter
	if caCert.NotAfter.Before(until) {
		until = caCert.NotAfter
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= verifyCacheMax {
		c.m = make(map[[32]byte]time.Time) // bounded: start over rather than grow
	}
	c.m[k] = until
}
