// Package ratelimit protects device-facing endpoints from abuse, per node,
// in bounded memory: Limiter is a set of token buckets (so many requests per
// second per source address, per registration ID, ...), Lockout shuts a key
// out for a growing time after repeated failures (bad attestation from one
// registration ID, say).
//
// Both keep at most maxKeys entries, in shards of a fixed size allocated up
// front, each shard behind its own mutex with its own least-recently-used
// list; every call is O(1) and, once a key is known, allocation-free. An
// attacker who floods with distinct keys can only push out the entries
// touched least recently, and a key pushed out starts afresh, which is what
// it would get by waiting anyway once its bucket had refilled. Keys are
// hashed with a per-instance random seed, so nobody can aim at a shard.
//
// The limits are per node: a cluster of N nodes allows up to N times as
// much. Time comes from an injected clock.
//
// Choose keys so that one attacker cannot cheaply own many: an IPv6 source
// is better keyed by its /64 than by its address. A lockout keyed by
// registration ID alone lets anyone who knows the ID lock its device out for
// up to the maximum; key by registration ID and source together when that
// matters more than slowing a distributed guesser.
package ratelimit
