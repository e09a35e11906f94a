package httpapi

// Listings as RabbitMQ's management API serves them: GET of a collection
// takes name (with use_regex), sort (a field, dotted for nested ones, like
// message_stats.publish), sort_reverse, columns (the fields to keep) and
// page with page_size. With page given the answer is RabbitMQ's page
// object, {items, page, page_count, page_size, filtered_count, item_count,
// total_count}; without it, the plain array.
//
// Where RabbitMQ is vague Sluice chose: the name filter applies with or
// without page, matches a substring (or the regular expression) case
// insensitively, and page_size defaults to 100 and is at most 500.

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

const (
	defaultPageSize = 100
	maxPageSize     = 500
)

// Page is the answer to a listing with page.
type Page struct {
	Items         []map[string]any `json:"items"`
	Page          int              `json:"page"`
	PageCount     int              `json:"page_count"`
	PageSize      int              `json:"page_size"`
	FilteredCount int              `json:"filtered_count"`
	ItemCount     int              `json:"item_count"`
	TotalCount    int              `json:"total_count"`
}

// listQuery is a listing's query, parsed.
type listQuery struct {
	name        *regexp.Regexp
	sort        []string
	reverse     bool
	columns     [][]string
	page, size  int // page 0: no paging
	transformed bool
}

func parseListQuery(q url.Values) (listQuery, error) {
	var lq listQuery
	if name := q.Get("name"); name != "" {
		expr := regexp.QuoteMeta(name)
		if b, _ := strconv.ParseBool(q.Get("use_regex")); b {
			expr = name
		}
		re, err := regexp.Compile("(?i)" + expr)
		if err != nil {
			return lq, fmt.Errorf("name: not a regular expression: %v", err)
		}
		lq.name, lq.transformed = re, true
	}
	if s := q.Get("sort"); s != "" {
		lq.sort, lq.transformed = strings.Split(s, "."), true
	}
	lq.reverse, _ = strconv.ParseBool(q.Get("sort_reverse"))
	lq.transformed = lq.transformed || lq.reverse
	if c := q.Get("columns"); c != "" {
		for _, col := range strings.Split(c, ",") {
			if col = strings.TrimSpace(col); col != "" {
				lq.columns = append(lq.columns, strings.Split(col, "."))
			}
		}
		lq.transformed = true
	}
	if p := q.Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 {
			return lq, fmt.Errorf("page: %q, want a whole number from 1", p)
		}
		lq.page, lq.size, lq.transformed = n, defaultPageSize, true
		if ps := q.Get("page_size"); ps != "" {
			n, err := strconv.Atoi(ps)
			if err != nil || n < 1 || n > maxPageSize {
				return lq, fmt.Errorf("page_size: %q, want a whole number from 1 to %d", ps, maxPageSize)
			}
			lq.size = n
		}
	}
	return lq, nil
}

// writeListing answers a GET of a collection with items (a slice of API
// types), filtered, sorted, paged and projected as the query asks.
func writeListing(w http.ResponseWriter, r *http.Request, items any) {
	lq, err := parseListQuery(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if !lq.transformed {
		writeJSON(w, http.StatusOK, items)
		return
	}
	// Filter and sort by fields read from the typed items
	// (listing_fields.go); only the items answered are encoded.
	list := reflect.ValueOf(items)
	total := list.Len()
	kept := make([]int, 0, total)
	for i := range total {
		if lq.name == nil {
			kept = append(kept, i)
			continue
		}
		if n, ok := jsonField(list.Index(i), []string{"name"}).(string); ok && lq.name.MatchString(n) {
			kept = append(kept, i)
		}
	}
	if lq.sort != nil {
		keys := make(map[int]any, len(kept))
		for _, i := range kept {
			keys[i] = jsonField(list.Index(i), lq.sort)
		}
		slices.SortStableFunc(kept, func(a, b int) int { return compareJSON(keys[a], keys[b]) })
	}
	if lq.reverse {
		slices.Reverse(kept)
	}
	from, to := 0, len(kept)
	pages := 0
	if lq.page != 0 {
		pages = (len(kept) + lq.size - 1) / lq.size
		if lq.page > max(pages, 1) {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("page %d out of range; there are %d pages", lq.page, pages))
			return
		}
		from = (lq.page - 1) * lq.size
		to = min(from+lq.size, len(kept))
	}
	answered := make([]any, 0, to-from)
	for _, i := range kept[from:to] {
		answered = append(answered, list.Index(i).Interface())
	}
	raw, err := json.Marshal(answered)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal_error", "encode listing: "+err.Error())
		return
	}
	var out []map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		writeError(w, http.StatusInternalServerError, "internal_error", "encode listing: "+err.Error())
		return
	}
	if lq.columns != nil {
		for i, it := range out {
			out[i] = project(it, lq.columns)
		}
	}
	if lq.page == 0 {
		writeJSON(w, http.StatusOK, out)
		return
	}
	writeJSON(w, http.StatusOK, Page{Items: out, Page: lq.page, PageCount: pages, PageSize: lq.size,
		FilteredCount: len(kept), ItemCount: len(out), TotalCount: total})
}

func lookupPath(m map[string]any, path []string) any {
	var v any = m
	for _, k := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[k]
	}
	return v
}

// project keeps the columns of it, nested ones under their parents.
func project(it map[string]any, columns [][]string) map[string]any {
	out := make(map[string]any, len(columns))
	for _, col := range columns {
		v := lookupPath(it, col)
		if v == nil {
			continue
		}
		dst := out
		for _, k := range col[:len(col)-1] {
			next, ok := dst[k].(map[string]any)
			if !ok {
				next = make(map[string]any)
				dst[k] = next
			}
			dst = next
		}
		dst[col[len(col)-1]] = v
	}
	return out
}

// compareJSON orders decoded JSON values: missing first, then numbers,
// then strings, then booleans, each in its natural order.
func compareJSON(a, b any) int {
	ra, rb := jsonRank(a), jsonRank(b)
	if ra != rb {
		return cmp.Compare(ra, rb)
	}
	switch x := a.(type) {
	case json.Number:
		fa, _ := x.Float64()
		fb, _ := b.(json.Number).Float64()
		return cmp.Compare(fa, fb)
	case string:
		return strings.Compare(x, b.(string))
	case bool:
		if x == b.(bool) {
			return 0
		}
		if !x {
			return -1
		}
		return 1
	}
	return 0
}

func jsonRank(v any) int {
	switch v.(type) {
	case nil:
		return 0
	case json.Number:
		return 1
	case string:
		return 2
	case bool:
		return 3
	}
	return 4
}
