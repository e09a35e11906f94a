package schema

import (
	"crypto/sha256"
	"sync"
)

// Cache shares compiled schemas between their users: the same document
// (byte for byte) is compiled once, however many names or vhosts register
// it, and is dropped when its last user releases it.
type Cache struct {
	mu      sync.Mutex
	entries map[[sha256.Size]byte]*cacheEntry
}

type cacheEntry struct {
	s    *Schema
	refs int
}

// NewCache returns an empty cache.
func NewCache() *Cache {
	return &Cache{entries: make(map[[sha256.Size]byte]*cacheEntry)}
}

// Acquire returns the compiled form of doc, compiling it on first use.
// Every successful Acquire is paired with a Release.
func (c *Cache) Acquire(doc []byte) (*Schema, error) {
	key := sha256.Sum256(doc)
	c.mu.Lock()
	if e := c.entries[key]; e != nil {
		e.refs++
		c.mu.Unlock()
		return e.s, nil
	}
	c.mu.Unlock()
	// Compile outside the lock: a large schema must not stall other users.
	s, err := Compile(doc)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[key]; e != nil { // compiled meanwhile by another caller
		e.refs++
		return e.s, nil
	}
	c.entries[key] = &cacheEntry{s: s, refs: 1}
	return s, nil
}

// Release gives back one Acquire of s.
func (c *Cache) Release(s *Schema) {
	if s == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[s.digest]
	if e == nil || e.s != s {
		return
	}
	e.refs--
	if e.refs <= 0 {
		delete(c.entries, s.digest)
	}
}

// Len returns the number of distinct compiled schemas held.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
