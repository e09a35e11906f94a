package cluster

import (
	"slices"
	"sync"
	"testing"
)

// Two nodes of five declare one new queue with three members at the same
// moment, each choosing other members: the metadata group settles one
// choice, both declarations succeed, and every node sees one group with
// the winner's voters, which replicates writes to all.
func TestConcurrentCreatePlacesOnce(t *testing.T) {
	c := newTestCluster(t, 5)
	q := QueueID("/", "contended")
	choices := map[string][]string{"n1": {"n1", "n3", "n4"}, "n2": {"n2", "n5", "n3"}}
	var wg sync.WaitGroup
	errs := make(map[string]error)
	var mu sync.Mutex
	for _, i := range []int{0, 1} {
		n := c.nodes[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := n.h.CreateQueue(ctx(t), q, []byte("def"), choices[n.name])
			mu.Lock()
			errs[n.name] = err
			mu.Unlock()
		}()
	}
	wg.Wait()
	for name, err := range errs {
		if err != nil {
			t.Fatalf("declare on %s: %v", name, err)
		}
	}
	var members []string
	waitFor(t, "every node sees one group", func() bool {
		members = nil
		for _, n := range c.nodes {
			gs, ok := n.h.QueueStatus(q)
			if !ok || len(gs.Members) != 3 || members != nil && !slices.Equal(gs.Members, members) {
				return false
			}
			members = gs.Members
		}
		return true
	})
	var won bool
	for _, choice := range choices {
		sorted := slices.Sorted(slices.Values(choice))
		won = won || slices.Equal(sorted, members)
	}
	if !won {
		t.Fatalf("members %v are neither node's choice %v", members, choices)
	}
	for _, n := range c.nodes[:2] {
		if n.rec.def(q) == nil {
			t.Fatalf("%s declared the queue but it is not defined there", n.name)
		}
	}
	c.write(put(q, 1, 2, 3))
	for _, n := range c.nodes {
		waitFor(t, n.name+" holds the writes", func() bool { return len(contents(t, n.st, q)) == 3 })
	}
}
