package ratelimit

import (
	"hash/maphash"
	"sync"
)

// table is a bounded map from string keys to values of type V, split into
// shards that each keep an LRU list over a fixed array of slots. Callers
// lock a shard, then look up, insert or remove under that lock.
type table[V any] struct {
	seed   maphash.Seed
	shards []shard[V]
	mask   uint64
}

type shard[V any] struct {
	mu         sync.Mutex
	index      map[string]int32
	slots      []slot[V] // len grows up to cap, then slots are reused
	head, tail int32     // most and least recently used; -1 when empty
	free       int32     // a removed slot to reuse, chained by next; -1 if none
	_          [64]byte  // keep neighbouring shards' locks off one cache line
}

type slot[V any] struct {
	key        string
	prev, next int32
	val        V
}

const (
	maxShards        = 64
	minSlotsPerShard = 64
	none             = int32(-1)
)

// newTable returns a table that holds at most maxKeys entries. Shards get
// at least minSlotsPerShard slots each, so a small table is one shard with
// exact LRU and a large one is 64 with LRU per shard.
func newTable[V any](maxKeys int) *table[V] {
	if maxKeys < 1 {
		panic("ratelimit: maxKeys must be at least 1")
	}
	n := 1
	for n < maxShards && maxKeys/(2*n) >= minSlotsPerShard {
		n *= 2
	}
	per := maxKeys / n
	if per > 1<<30 {
		panic("ratelimit: maxKeys too large")
	}
	t := &table[V]{seed: maphash.MakeSeed(), shards: make([]shard[V], n), mask: uint64(n - 1)}
	for i := range t.shards {
		s := &t.shards[i]
		s.index = make(map[string]int32, per)
		s.slots = make([]slot[V], 0, per)
		s.head, s.tail, s.free = none, none, none
	}
	return t
}

func (t *table[V]) shard(key string) *shard[V] {
	return &t.shards[maphash.String(t.seed, key)&t.mask]
}

// len returns the number of entries.
func (t *table[V]) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += len(s.index)
		s.mu.Unlock()
	}
	return n
}

// get returns key's value and marks it most recently used, or nil.
func (s *shard[V]) get(key string) *V {
	i, ok := s.index[key]
	if !ok {
		return nil
	}
	s.touch(i)
	return &s.slots[i].val
}

// put adds key, which must be absent, with a zero value and returns it.
// If the shard is full it first evicts an entry: the least recently used
// one among the few oldest for which keep is false, or failing that the
// least recently used one.
func (s *shard[V]) put(key string, keep func(*V) bool) *V {
	var i int32
	switch {
	case s.free != none:
		i = s.free
		s.free = s.slots[i].next
	case len(s.slots) < cap(s.slots):
		s.slots = s.slots[:len(s.slots)+1]
		i = int32(len(s.slots) - 1)
	case cap(s.slots) == 0:
		panic("ratelimit: empty shard")
	default:
		i = s.victim(keep)
		s.unlink(i)
		delete(s.index, s.slots[i].key)
	}
	s.slots[i] = slot[V]{key: key, prev: none, next: none}
	s.index[key] = i
	s.pushFront(i)
	return &s.slots[i].val
}

// victimScan bounds how far from the tail put looks for an entry it may
// evict without losing anything that matters.
const victimScan = 8

func (s *shard[V]) victim(keep func(*V) bool) int32 {
	if keep != nil {
		for i, n := s.tail, 0; i != none && n < victimScan; i, n = s.slots[i].prev, n+1 {
			if !keep(&s.slots[i].val) {
				return i
			}
		}
	}
	return s.tail
}

// remove deletes key if present.
func (s *shard[V]) remove(key string) {
	i, ok := s.index[key]
	if !ok {
		return
	}
	s.unlink(i)
	delete(s.index, key)
	s.slots[i] = slot[V]{prev: none, next: s.free}
	s.free = i
}

func (s *shard[V]) touch(i int32) {
	if s.head == i {
		return
	}
	s.unlink(i)
	s.pushFront(i)
}

func (s *shard[V]) unlink(i int32) {
	e := &s.slots[i]
	if e.prev != none {
		s.slots[e.prev].next = e.next
	} else {
		s.head = e.next
	}
	if e.next != none {
		s.slots[e.next].prev = e.prev
	} else {
		s.tail = e.prev
	}
	e.prev, e.next = none, none
}

func (s *shard[V]) pushFront(i int32) {
	e := &s.slots[i]
	e.prev, e.next = none, s.head
	if s.head != none {
		s.slots[s.head].prev = i
	}
	s.head = i
	if s.tail == none {
		s.tail = i
	}
}
