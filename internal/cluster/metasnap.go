package cluster

// The metadata group's snapshot: the shared metadata keys of the node's
// store (those the route given to ShareMeta does not keep local), streamed,
// staged and installed as a queue group's state is (snapshot.go), as
// itemMeta items staged under the group's stage prefix.
//
// The keys are read while later entries may still apply, so the state is
// at or past the snapshot's index; the member then applies every entry
// after the index on top of it. That converges for MetaCreate too, whose
// apply reads the key: after a key's last put or delete among those
// entries both sides hold the same value and decide the creates after it
// alike; with only creates after the index, the leader's value at the end
// is the first one that applied (or absent, if none could), and applying
// the creates again on top of it changes nothing.
//
// Installing deletes the shared keys the snapshot does not hold (in the
// synced batch that marks the install), then copies the staged ones over
// the store's; the broker is told every key either touched (MetaChanged),
// which reloads them as its recovery does.

import (
	"bytes"
	"strings"

	"github.com/sluicemq/sluice/internal/store"
)

// stageMetaDir holds a staged metadata snapshot's keys under a group's
// stage prefix.
const stageMetaDir = "m/"

// metaShared reports whether a metadata key holding v is one the
// metadata group carries: the route's shared keys (none while no route is
// set) and the host's own queue placements (placement.go).
func (h *Host) metaShared(key string, v []byte) bool {
	if strings.HasPrefix(key, placementPrefix) {
		return true
	}
	route := h.metaRoute.Load()
	return route != nil && (*route)(store.Op{Kind: store.OpPutMeta, Key: key, Value: v}) != MetaLocal
}

// walkMeta emits the shared metadata keys of st (the metadata group's
// live state).
func (h *Host) walkMeta(st store.Store, _ uint64, emit func(snapItem) error) error {
	var eerr error
	err := st.ScanMeta("", func(key string, v []byte) bool {
		if h.metaShared(key, v) {
			eerr = emit(snapItem{kind: itemMeta, key: key, val: bytes.Clone(v)})
		}
		return eerr == nil
	})
	if err != nil {
		return err
	}
	return eerr
}

// dropMetaNotStaged adds to b the deletion of the shared keys the staged
// metadata snapshot does not hold, and returns those keys and the staged
// ones: every key the install changes.
func (h *Host) dropMetaNotStaged(b *store.Batch) ([]string, error) {
	prefix := stagePrefix(MetaGroup) + stageMetaDir
	var keys []string
	staged := make(map[string]struct{})
	if err := h.st.ScanMeta(prefix, func(key string, _ []byte) bool {
		keys = append(keys, key[len(prefix):])
		staged[key[len(prefix):]] = struct{}{}
		return true
	}); err != nil {
		return nil, err
	}
	err := h.st.ScanMeta("", func(key string, v []byte) bool {
		if _, ok := staged[key]; !ok && h.metaShared(key, v) {
			b.DeleteMeta(key)
			keys = append(keys, key)
		}
		return true
	})
	return keys, err
}

// nonNil makes an empty value stored as empty, not as a deletion.
func nonNil(v []byte) []byte {
	if v == nil {
		return []byte{}
	}
	return v
}
