package vrrpsim

import (
	"sync"
	"time"
)

// Clock is virtual time (a clock.Clock): After advances it at once and runs
// the hooks that fall due, so a test can cancel a context "3 s into the
// scenario". Only one goroutine of the code under test waits at a time (the
// failover engine's scenario, the rollout's poll loop), which keeps runs
// deterministic; Now is read from other goroutines too, hence the lock.
type Clock struct {
	mu    sync.Mutex
	start time.Time
	now   time.Time
	hooks []hook
}

type hook struct {
	at   time.Duration
	fn   func()
	done bool
}

// NewClock starts virtual time at a fixed instant.
func NewClock() *Clock {
	t := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	return &Clock{start: t, now: t}
}

// Now is the virtual instant.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Elapsed is the virtual time since NewClock.
func (c *Clock) Elapsed() time.Duration { return c.Now().Sub(c.start) }

// At runs fn once, from the After call that moves virtual time to d or past.
func (c *Clock) At(d time.Duration, fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hooks = append(c.hooks, hook{at: d, fn: fn})
}

// After advances virtual time by d and returns a channel that is ready.
func (c *Clock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.now = c.now.Add(d)
	now := c.now
	var due []func()
	for i := range c.hooks {
		if !c.hooks[i].done && now.Sub(c.start) >= c.hooks[i].at {
			c.hooks[i].done = true
			due = append(due, c.hooks[i].fn)
		}
	}
	c.mu.Unlock()
	for _, fn := range due {
		fn()
	}
	ch := make(chan time.Time, 1)
	ch <- now
	return ch
}
