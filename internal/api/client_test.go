package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestPath(t *testing.T) {
	for _, tc := range []struct {
		segs []string
		want string
	}{
		{[]string{"queues", "/", "q"}, "/api/queues/%2F/q"},
		{[]string{"queues", "a b", "x/y"}, "/api/queues/a%20b/x%2Fy"},
		{nil, "/api"},
	} {
		if got := Path(tc.segs...); got != tc.want {
			t.Errorf("Path(%q) = %q, want %q", tc.segs, got, tc.want)
		}
	}
}

func TestErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "me" || p != "pw" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/api/queues/%2F/q", "/api/queues///q":
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":"not_found","reason":"no queue 'q' in vhost '/'"}`))
		case "/api/overview":
			_, _ = w.Write([]byte(`{"product_name":"Sluice","queue_totals":{"messages":3}}`))
		default:
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("upstream down"))
		}
	}))
	defer srv.Close()
	c := NewClient(srv.URL+"/", "me", "pw")
	ctx := context.Background()
	o, err := c.Overview(ctx)
	if err != nil || o.ProductName != "Sluice" || o.QueueTotals.Messages != 3 {
		t.Fatalf("overview %+v %v", o, err)
	}
	_, err = c.Queue(ctx, "/", "q")
	if StatusOf(err) != 404 || err.Error() != "not_found: no queue 'q' in vhost '/'" {
		t.Fatalf("queue: %v (status %d)", err, StatusOf(err))
	}
	_, err = c.Users(ctx)
	if StatusOf(err) != 502 || err.(*Error).Reason != "upstream down" {
		t.Fatalf("non-JSON error: %#v", err)
	}
	_, err = NewClient(srv.URL, "me", "bad").Overview(ctx)
	if StatusOf(err) != 401 {
		t.Fatalf("bad credentials: %v", err)
	}
}
