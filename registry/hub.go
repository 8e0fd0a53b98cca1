package registry

import "sync"

// hub wakes event streams when events commit. Each scope has a channel that
// is closed (and replaced) on every commit touching the scope: a waiter takes
// the current channel, reads the log, and sleeps on the channel. Streams also
// poll, which covers events committed by other nodes sharing the database.
type hub struct {
	mu sync.Mutex
	ch map[string]chan struct{}
}

func newHub() *hub { return &hub{ch: make(map[string]chan struct{})} }

func (h *hub) signal(scope string) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, ok := h.ch[scope]
	if !ok {
		c = make(chan struct{})
		h.ch[scope] = c
	}
	return c
}

// anyScope is the hub key of waiters for commits in any scope.
const anyScope = "*"

func (h *hub) notify(scope string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, k := range []string{scope, anyScope} {
		if c, ok := h.ch[k]; ok {
			close(c)
			delete(h.ch, k)
		}
	}
}
