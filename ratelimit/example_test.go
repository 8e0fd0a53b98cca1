package ratelimit_test

import (
	"fmt"
	"time"

	"github.com/gatehouse-iot/gatehouse/ratelimit"
)

func Example() {
	clock := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }

	// Two registrations per second per source, bursts of two.
	limit := ratelimit.New(2, 2, 100000, now)
	for range 3 {
		fmt.Println(limit.Allow("src:192.0.2.1"))
	}

	// Three bad tokens in a row lock a registration ID out for a minute,
	// then two, four, ... up to an hour.
	lock := ratelimit.NewLockout(3, time.Minute, time.Hour, 100000, now)
	for range 4 {
		fmt.Println(lock.Failure("reg:default/dev-1"))
	}
	fmt.Println(lock.Check("reg:default/dev-1"))
	// Output:
	// true 0s
	// true 0s
	// false 500ms
	// 0s
	// 0s
	// 1m0s
	// 2m0s
	// true 2m0s
}
