package broker

import (
	"slices"
	"strings"
)

// topicNode is a trie of topic binding keys, one level per word; "*" and
// "#" are children like any word and are treated specially when matching.
type topicNode struct {
	children map[string]*topicNode
	bindings []*binding
}

// splitTopic splits a routing or binding key into words: "" has none,
// "a..b" has an empty middle word, as RabbitMQ splits them.
func splitTopic(key string) []string {
	if key == "" {
		return nil
	}
	return strings.Split(key, ".")
}

func (n *topicNode) add(words []string, bd *binding) {
	for _, w := range words {
		if n.children == nil {
			n.children = make(map[string]*topicNode)
		}
		c := n.children[w]
		if c == nil {
			c = &topicNode{}
			n.children[w] = c
		}
		n = c
	}
	n.bindings = append(n.bindings, bd)
}

// remove removes bd and prunes the nodes left empty; it reports whether n
// is now empty.
func (n *topicNode) remove(words []string, bd *binding) bool {
	if len(words) == 0 {
		n.bindings = slices.DeleteFunc(n.bindings, func(b *binding) bool { return b == bd })
	} else if c := n.children[words[0]]; c != nil && c.remove(words[1:], bd) {
		delete(n.children, words[0])
	}
	return len(n.bindings) == 0 && len(n.children) == 0
}

// match appends the bindings whose keys match the routing key's words. A
// binding reached along several paths (keys like "#.#") is appended more
// than once; routing deduplicates destinations.
func (n *topicNode) match(words []string, out []*binding) []*binding {
	if len(words) == 0 {
		out = append(out, n.bindings...)
	} else {
		if c := n.children[words[0]]; c != nil {
			out = c.match(words[1:], out)
		}
		if c := n.children["*"]; c != nil {
			out = c.match(words[1:], out)
		}
	}
	if h := n.children["#"]; h != nil {
		// "#" takes zero or more words.
		for i := 0; i <= len(words); i++ {
			out = h.match(words[i:], out)
		}
	}
	return out
}
