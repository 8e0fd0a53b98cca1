package registry

import (
	"sync"
	"time"
)

// recheckInterval is how long a node uses what it read of a scope's CA or
// issuance policy before it reads the stored one again: a change made on
// this node applies at once (the node forgets its copy), one made on
// another node within recheckInterval. Reading both at every registration
// cost about 4% of its CPU.
const recheckInterval = time.Second

// recheckCache keeps per-scope values read from the store with the time
// they were last checked against it.
type recheckCache[V any] struct {
	mu sync.Mutex
	m  map[string]rechecked[V]
}

type rechecked[V any] struct {
	v       V
	checked time.Time
}

func newRecheckCache[V any]() recheckCache[V] {
	return recheckCache[V]{m: map[string]rechecked[V]{}}
}

// get returns the value kept for key, whether there is one, and whether it
// is due for a recheck.
func (c *recheckCache[V]) get(key string) (v V, ok, due bool) {
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	return e.v, ok, !ok || time.Since(e.checked) >= recheckInterval
}

// put keeps v for key, checked at the time given (taken before the read).
func (c *recheckCache[V]) put(key string, v V, checked time.Time) {
	c.mu.Lock()
	c.m[key] = rechecked[V]{v: v, checked: checked}
	c.mu.Unlock()
}

// forget drops key's value, after this node changed what it was read from.
func (c *recheckCache[V]) forget(key string) {
	c.mu.Lock()
	delete(c.m, key)
	c.mu.Unlock()
}
