package main

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// errInjectedDrop is the failure of a connection the simulator dropped.
var errInjectedDrop = errors.New("sim: connection dropped (injected fault)")

// faultDialer is the simulated devices' dialer: it drops a share of the
// connections and slows all of them, so that the SDK's retries run.
type faultDialer struct {
	dropRate float64
	delay    time.Duration
	dialer   net.Dialer

	mu  sync.Mutex
	rng *rand.Rand

	dialed  atomic.Int64
	dropped atomic.Int64
}

func newFaultDialer(dropRate float64, delay time.Duration, seed uint64) *faultDialer {
	if seed == 0 {
		seed = rand.Uint64()
	}
	return &faultDialer{dropRate: dropRate, delay: delay, dialer: net.Dialer{Timeout: 15 * time.Second},
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// DialContext is a deviceclient.Config.DialContext. A dropped connection
// fails either at once (half the drops: the network refused it) or after a
// random number of bytes read (in the TLS handshake or in the answer), as a
// connection cut mid-way does.
func (f *faultDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	f.dialed.Add(1)
	if err := sleepCtx(ctx, f.delay); err != nil {
		return nil, err
	}
	f.mu.Lock()
	drop := f.rng.Float64() < f.dropRate
	atOnce := f.rng.IntN(2) == 0
	after := f.rng.IntN(4096)
	f.mu.Unlock()
	if drop && atOnce {
		f.dropped.Add(1)
		return nil, errInjectedDrop
	}
	c, err := f.dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	fc := &faultConn{Conn: c, f: f, delay: f.delay, left: -1}
	if drop {
		fc.left = after
	}
	return fc, nil
}

// faultConn is a connection that is slowed by delay on each write and, if
// left >= 0, cut once left more bytes have been read.
type faultConn struct {
	net.Conn
	f     *faultDialer
	delay time.Duration
	left  int // bytes to read before the cut; -1: never cut
	cut   bool
}

func (c *faultConn) Read(p []byte) (int, error) {
	if c.cut {
		return 0, errInjectedDrop
	}
	if c.left >= 0 && len(p) > c.left {
		p = p[:max(c.left, 0)]
		if len(p) == 0 {
			c.cut = true
			c.f.dropped.Add(1)
			c.Conn.Close()
			return 0, errInjectedDrop
		}
	}
	n, err := c.Conn.Read(p)
	if c.left >= 0 {
		c.left -= n
	}
	return n, err
}

func (c *faultConn) Write(p []byte) (int, error) {
	if c.delay > 0 {
		time.Sleep(c.delay)
	}
	return c.Conn.Write(p)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
