package provision

import "time"

// Lockout thresholds. Failed proofs of one ID from one source address lock
// that source out of the ID quickly; the ID itself, from every source, only
// after ten times as many. Someone who knows a device's ID (often printed
// on it) cannot then lock the device out from one address, while a
// guesser spread over many addresses is still stopped. (Keys are 256-bit
// HMAC keys and tokens are random: the lockout bounds load and noise more
// than guessing.)
const (
	sourceLockoutFailures = 5
	idLockoutFailures     = 10 * sourceLockoutFailures
	lockoutBase           = 10 * time.Second
	lockoutMax            = 15 * time.Minute
)

// guard names what the rate limits and lockouts count for one request: the
// ID alone, and the ID as seen from the request's source address (the ID
// alone when the source is unknown).
type guard struct{ id, pair string }

func newGuard(id, source string) guard {
	if source == "" {
		return guard{id: id, pair: id}
	}
	return guard{id: id, pair: source + "|" + id}
}

// lockedOut reports whether g is locked out (from its source, or
// everywhere), and for how long.
func (s *Service) lockedOut(g guard) (bool, time.Duration) {
	if locked, after := s.lockout.Check(g.pair); locked {
		return true, after
	}
	return s.idLockout.Check(g.id)
}

// failed counts a failed proof; it returns how long a lock it started or
// extended lasts (0 if none).
func (s *Service) failed(g guard) time.Duration {
	return max(s.lockout.Failure(g.pair), s.idLockout.Failure(g.id))
}

// succeeded clears g's failures.
func (s *Service) succeeded(g guard) {
	s.lockout.Success(g.pair)
	s.idLockout.Success(g.id)
}
