package devicehttp

import (
	"encoding/json"
	"sync"
	"time"
)

// issuedCache keeps, for a short while, what a DPS registration produced
// that the operation poll must return but the registration record does not
// hold: the issued certificate chain and the allocation webhook's payload.
// It is per node: a poll that lands on another node of a cluster answers
// without them (see the package documentation).
type issuedCache struct {
	mu  sync.Mutex
	m   map[string]issuedEntry
	ttl time.Duration
	max int
}

type issuedEntry struct {
	operationID string
	chain       [][]byte // DER, leaf first
	payload     json.RawMessage
	at          time.Time
}

func newIssuedCache() *issuedCache {
	return &issuedCache{m: map[string]issuedEntry{}, ttl: 15 * time.Minute, max: 10_000}
}

func (c *issuedCache) put(key string, e issuedEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; !ok && len(c.m) >= c.max {
		for k, v := range c.m {
			if e.at.Sub(v.at) > c.ttl {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < c.max {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[key] = e
}

// get returns the entry for key if it belongs to operationID and is fresh.
func (c *issuedCache) get(key, operationID string, now time.Time) (issuedEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || e.operationID != operationID || now.Sub(e.at) > c.ttl {
		return issuedEntry{}, false
	}
	return e, true
}
