package ops

import (
	"strings"
	"sync"

	"github.com/hactl/hactl/pkg/playbook"
)

// skipCounter passes events on and counts each host's skipped steps, for
// the recap.
type skipCounter struct {
	Events
	mu sync.Mutex
	n  map[string]int
}

func (c *skipCounter) Event(e playbook.Event) {
	if e.Status == "ok" && strings.HasPrefix(e.Summary, "skipped:") {
		c.mu.Lock()
		c.n[e.Host]++
		c.mu.Unlock()
	}
	c.Events.Event(e)
}

func (c *skipCounter) skipped(host string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[host]
}
