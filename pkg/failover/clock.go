package failover

import "time"

// Clock is the engine's only source of time, so tests can run minutes of
// virtual failover in microseconds. Every wait of the engine goes through
// After; nothing else in the package reads the wall clock.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// RealClock is the wall clock.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// After returns time.After(d).
func (RealClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
