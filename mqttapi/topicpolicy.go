package mqttapi

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// scopeTopics is one scope's device topic policy. Sessions hold a pointer
// to it, so a policy change reaches the sessions already connected.
type scopeTopics struct {
	p      atomic.Pointer[gatehouse.TopicPolicy]
	loaded atomic.Int64 // unix nanoseconds
}

func (t *scopeTopics) policy() *gatehouse.TopicPolicy {
	if t == nil {
		return gatehouse.DefaultTopicPolicy
	}
	if p := t.p.Load(); p != nil {
		return p
	}
	return gatehouse.DefaultTopicPolicy
}

// topicPolicies caches each scope's topic policy. The broker keeps an
// entry until a scope.updated event reloads it; the external broker hook,
// which follows no events, reloads an entry older than ttl.
type topicPolicies struct {
	reg interface {
		ScopePolicy(ctx context.Context, scope string) (gatehouse.ScopePolicy, error)
	}
	log *slog.Logger
	ttl time.Duration // 0: until reloaded
	now func() time.Time

	mu sync.Mutex
	m  map[string]*scopeTopics
}

func newTopicPolicies(reg Registry, log *slog.Logger, ttl time.Duration) *topicPolicies {
	return &topicPolicies{reg: reg, log: log, ttl: ttl, now: time.Now, m: map[string]*scopeTopics{}}
}

// get returns a scope's policy holder, loading it if needed. An error is
// returned only when there is no policy to use yet.
func (c *topicPolicies) get(ctx context.Context, scope string) (*scopeTopics, error) {
	c.mu.Lock()
	t := c.m[scope]
	if t == nil {
		t = &scopeTopics{}
		c.m[scope] = t
	}
	c.mu.Unlock()
	stale := t.p.Load() == nil || c.ttl > 0 && c.now().UnixNano()-t.loaded.Load() > int64(c.ttl)
	if !stale {
		return t, nil
	}
	if err := c.load(ctx, scope, t); err != nil && t.p.Load() == nil {
		return nil, err
	}
	return t, nil
}

// reload reads a scope's policy again (after a scope.updated event), if
// it was loaded before.
func (c *topicPolicies) reload(ctx context.Context, scope string) {
	c.mu.Lock()
	t := c.m[scope]
	c.mu.Unlock()
	if t != nil {
		if err := c.load(ctx, scope, t); err != nil {
			c.log.Error("mqtt: reload topic policy", "scope", scope, "err", err)
		}
	}
}

func (c *topicPolicies) load(ctx context.Context, scope string, t *scopeTopics) error {
	sp, err := c.reg.ScopePolicy(ctx, scope)
	if err != nil {
		return err
	}
	p, err := sp.TopicPolicy()
	if err != nil {
		// Validated when it was set; a policy that no longer parses
		// falls back to the default, loudly.
		c.log.Error("mqtt: the scope's topic templates do not parse; using the default", "scope", scope, "err", err)
	}
	t.p.Store(p)
	t.loaded.Store(c.now().UnixNano())
	return nil
}
