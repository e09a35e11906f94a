package httpapi

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/api"
)

// TestJSONFieldMatchesEncodedLookup: reading a field from the typed item
// finds what encoding it to JSON and looking the path up would.
func TestJSONFieldMatchesEncodedLookup(t *testing.T) {
	tag := "ctag"
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	items := []any{
		api.Queue{Name: "a", VHost: "/", Arguments: map[string]any{"x-max-length": 5, "x-schema": "s"},
			Messages: 3, ExclusiveConsumerTag: &tag, MessageStats: api.MessageStats{Publish: 7, PublishDetails: api.Rate{Rate: 1.5}}},
		api.Queue{Name: "b"},
		api.Message{ID: 4, Death: &api.Death{Queue: "orders", Time: now}},
		api.Message{ID: 5},
		api.Task{ID: "t", Finished: &now},
	}
	paths := []string{"name", "vhost", "messages", "arguments", "arguments.x-max-length", "arguments.x-schema",
		"arguments.nope", "exclusive_consumer_tag", "owner_pid_details", "owner_pid_details.name",
		"message_stats.publish", "message_stats.publish_details.rate", "message_stats.return_unroutable",
		"message_stats.return_unroutable_details.rate", "id", "death", "death.queue", "death.time", "ready_at",
		"finished", "errors", "nothing", "name.deeper"}
	for _, it := range items {
		raw, err := json.Marshal(it)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			path := strings.Split(p, ".")
			got, want := jsonField(reflect.ValueOf(it), path), lookupPath(m, path)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%T %s: got %#v, want %#v", it, p, got, want)
			}
		}
	}
}
