// Package clock is the one source of time for code that waits on the fleet
// (the failover engine, the rollout), so their tests run minutes of virtual
// time in microseconds.
package clock

import "time"

// Clock is what a waiting package reads time from. Every wait goes through
// After; such a package never reads the wall clock itself.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// Real is the wall clock.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// After returns time.After(d).
func (Real) After(d time.Duration) <-chan time.Time { return time.After(d) }
