package ca

import (
	"testing"
	"time"
)

// TestSerialsSortByTime: serials carry the issue time ahead of 64 random
// bits, so they sort by issue time, as numbers and as the registry's
// hexadecimal IDs, and two issued in the same microsecond still differ.
func TestSerialsSortByTime(t *testing.T) {
	prev := ""
	seen := map[string]bool{}
	for i := range 2000 {
		n, err := randomSerial()
		if err != nil {
			t.Fatal(err)
		}
		if n.Sign() <= 0 || n.BitLen() > 128 || n.BitLen() < 120 {
			t.Fatalf("serial %x: %d bits, want a positive serial of 121", n, n.BitLen())
		}
		h := n.Text(16)
		if len(h) != 31 {
			t.Fatalf("serial %s has %d hex digits, want 31", h, len(h))
		}
		if seen[h] {
			t.Fatalf("serial %s issued twice", h)
		}
		seen[h] = true
		if i > 0 && h[:15] < prev[:15] {
			t.Fatalf("serial %s sorts before the earlier %s", h, prev)
		}
		prev = h
	}
	// The time field is the issue time.
	n, _ := randomSerial()
	b := n.Bytes()
	var us int64
	for _, c := range b[1:8] {
		us = us<<8 | int64(c)
	}
	if d := time.Since(time.UnixMicro(us)); d < 0 || d > time.Minute {
		t.Errorf("serial time field %v, want about now", time.UnixMicro(us))
	}
}
