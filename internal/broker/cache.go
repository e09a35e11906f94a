package broker

import (
	"sync"

	"github.com/sluicemq/sluice/internal/store"
)

type cacheKey struct {
	q   store.QueueID
	seq uint64
}

// bodyCache keeps the records of freshly published messages until their
// first delivery takes them, up to a byte budget. When the budget is used
// up, new records are not admitted: a backlog is then read back from the
// store in order, while the cache keeps the oldest (next to deliver).
type bodyCache struct {
	max int

	mu   sync.Mutex
	size int
	m    map[cacheKey][]byte
}

func newBodyCache(max int) *bodyCache {
	return &bodyCache{max: max, m: make(map[cacheKey][]byte)}
}

// put admits rec if it fits the budget.
func (c *bodyCache) put(k cacheKey, rec []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.size+len(rec) > c.max {
		return false
	}
	if old, ok := c.m[k]; ok {
		c.size -= len(old)
	}
	c.m[k] = rec
	c.size += len(rec)
	return true
}

// take removes and returns a record.
func (c *bodyCache) take(k cacheKey) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rec, ok := c.m[k]
	if ok {
		delete(c.m, k)
		c.size -= len(rec)
	}
	return rec, ok
}

// drop forgets a record.
func (c *bodyCache) drop(k cacheKey) { c.take(k) }

func (c *bodyCache) bytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}
