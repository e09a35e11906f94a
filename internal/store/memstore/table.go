package memstore

import (
	"slices"
	"sort"
)

// table is an ordered map. Keys live in a sorted slice; deletions only
// remove the value and leave the key behind until dead keys outnumber live
// ones, so deleting from the head of a long queue does not shift the whole
// slice on every ack. Appends in ascending key order (the usual case for
// sequence numbers) are O(1).
//
// A table is not safe for concurrent use; the MemStore's lock guards it.
type table[K comparable, V any] struct {
	cmp  func(a, b K) int
	keys []K // sorted, may hold keys no longer in vals
	vals map[K]V
	dead int // keys in keys that are not in vals
}

func newTable[K comparable, V any](cmp func(a, b K) int) *table[K, V] {
	return &table[K, V]{cmp: cmp, vals: make(map[K]V)}
}

func (t *table[K, V]) len() int { return len(t.vals) }

func (t *table[K, V]) get(k K) (V, bool) {
	v, ok := t.vals[k]
	return v, ok
}

// search returns the index of the first key >= k.
func (t *table[K, V]) search(k K) int {
	return sort.Search(len(t.keys), func(i int) bool { return t.cmp(t.keys[i], k) >= 0 })
}

func (t *table[K, V]) put(k K, v V) {
	if _, ok := t.vals[k]; ok {
		t.vals[k] = v
		return
	}
	t.vals[k] = v
	n := len(t.keys)
	if n == 0 || t.cmp(t.keys[n-1], k) < 0 {
		t.keys = append(t.keys, k)
		return
	}
	i := t.search(k)
	if i < n && t.cmp(t.keys[i], k) == 0 {
		t.dead-- // the key was dead and is live again
		return
	}
	t.keys = slices.Insert(t.keys, i, k)
}

func (t *table[K, V]) delete(k K) {
	if t.remove(k) {
		t.maybeCompact()
	}
}

// remove deletes k's value, leaving its key behind, and reports whether k
// was live.
func (t *table[K, V]) remove(k K) bool {
	if _, ok := t.vals[k]; !ok {
		return false
	}
	delete(t.vals, k)
	t.dead++
	return true
}

func (t *table[K, V]) maybeCompact() {
	if t.dead > 64 && t.dead > len(t.vals) {
		t.compact()
	}
}

// deleteRange removes every key with lo <= key < hi. It compacts only
// after the loop: compacting inside it would shift the keys it walks.
func (t *table[K, V]) deleteRange(lo, hi K) {
	for i := t.search(lo); i < len(t.keys) && t.cmp(t.keys[i], hi) < 0; i++ {
		t.remove(t.keys[i])
	}
	t.maybeCompact()
}

func (t *table[K, V]) compact() {
	live := t.keys[:0]
	for _, k := range t.keys {
		if _, ok := t.vals[k]; ok {
			live = append(live, k)
		}
	}
	clear(t.keys[len(live):])
	t.keys = live
	t.dead = 0
}

// last returns the greatest live key.
func (t *table[K, V]) last() (K, bool) {
	for i := len(t.keys) - 1; i >= 0; i-- {
		if _, ok := t.vals[t.keys[i]]; ok {
			return t.keys[i], true
		}
	}
	var zero K
	return zero, false
}

// collect appends up to max live entries with key >= from (strictly greater
// when after is set) to dst.
func (t *table[K, V]) collect(dst []entry[K, V], from K, after bool, max int) []entry[K, V] {
	i := t.search(from)
	if after && i < len(t.keys) && t.cmp(t.keys[i], from) == 0 {
		i++
	}
	for ; i < len(t.keys) && len(dst) < max; i++ {
		if v, ok := t.vals[t.keys[i]]; ok {
			dst = append(dst, entry[K, V]{t.keys[i], v})
		}
	}
	return dst
}

type entry[K, V any] struct {
	key K
	val V
}
