package adminapi

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/poolgate/poolgate/controlsvc/internal/prices"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// Admin lists are paginated by keyset (docs/design.md, "Admin lists"): ?limit= (1 to
// store.MaxPageLimit, default store.DefaultPageLimit) and ?cursor= (next_cursor of the
// previous page). The answer keeps its items field and adds next_cursor, null on the last
// page.

// pageBody is a page of an admin list.
type pageBody[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"next_cursor"` // null on the last page
}

// pageCursorPrefix versions the opaque cursor: base64url("p1:" + the last row's sort key,
// its parts comma-separated).
const pageCursorPrefix = "p1:"

// readPage reads limit and cursor; parts is the number of parts of the list's sort key.
func readPage(q url.Values, parts int) (store.Page, error) {
	limit, err := readLimit(q)
	if err != nil {
		return store.Page{}, err
	}
	p := store.Page{Limit: limit}
	if raw := q.Get("cursor"); raw != "" {
		after, ok := decodePageCursor(raw, parts)
		if !ok {
			return p, errBadCursor
		}
		p.After = after
	}
	return p, nil
}

var errBadCursor = invalid("query parameter cursor is not a cursor returned by this API")

// readLimit reads ?limit=: 1 to store.MaxPageLimit, default store.DefaultPageLimit.
func readLimit(q url.Values) (int, error) {
	raw := q.Get("limit")
	if raw == "" {
		return store.DefaultPageLimit, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 || n > store.MaxPageLimit {
		return 0, invalid("query parameter limit must be an integer from 1 to %d", store.MaxPageLimit)
	}
	return n, nil
}

// priceCursorPrefix versions the cursor of the price list, whose sort key is the model.
const priceCursorPrefix = "m1:"

// pageByModel cuts the page of entries (sorted by model) that ?limit= and ?cursor= ask for,
// and the cursor of the next page (nil on the last). The price list is kept in memory
// whole (billing needs it), so the page is cut there, by the same keyset rule.
func pageByModel(q url.Values, entries []prices.Entry) ([]prices.Entry, *string, error) {
	limit, err := readLimit(q)
	if err != nil {
		return nil, nil, err
	}
	start := 0
	if raw := q.Get("cursor"); raw != "" {
		b, err := base64.RawURLEncoding.DecodeString(raw)
		after, ok := strings.CutPrefix(string(b), priceCursorPrefix)
		if err != nil || !ok || len(raw) > 1024 {
			return nil, nil, errBadCursor
		}
		start = sort.Search(len(entries), func(i int) bool { return entries[i].Model > after })
	}
	page := entries[start:]
	if len(page) <= limit {
		return page, nil, nil
	}
	page = page[:limit]
	c := base64.RawURLEncoding.EncodeToString([]byte(priceCursorPrefix + page[limit-1].Model))
	return page, &c, nil
}

func encodePageCursor(key []int64) string {
	parts := make([]string, len(key))
	for i, k := range key {
		parts[i] = strconv.FormatInt(k, 10)
	}
	return base64.RawURLEncoding.EncodeToString([]byte(pageCursorPrefix + strings.Join(parts, ",")))
}

func decodePageCursor(raw string, parts int) ([]int64, bool) {
	if len(raw) > 128 { // a cursor of this API is far shorter
		return nil, false
	}
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return nil, false
	}
	s, ok := strings.CutPrefix(string(b), pageCursorPrefix)
	if !ok {
		return nil, false
	}
	fields := strings.Split(s, ",")
	if len(fields) != parts {
		return nil, false
	}
	out := make([]int64, parts)
	for i, f := range fields {
		if out[i], err = strconv.ParseInt(f, 10, 64); err != nil {
			return nil, false
		}
	}
	return out, true
}

// writePage renders a page the store returned for p: at most p.Limit items, and a cursor
// after the last when the store returned more (it fetches one extra row).
func writePage[T, V any](w http.ResponseWriter, r *http.Request, p store.Page, items []T, key func(T) []int64,
	view func(T) (V, error)) {
	var next *string
	if len(items) > p.Limit {
		items = items[:p.Limit]
		c := encodePageCursor(key(items[len(items)-1]))
		next = &c
	}
	views := make([]V, 0, len(items))
	for _, item := range items {
		v, err := view(item)
		if err != nil {
			writeError(w, r, err)
			return
		}
		views = append(views, v)
	}
	writeJSON(w, http.StatusOK, pageBody[V]{Items: views, NextCursor: next})
}

// servePage answers GET of a collection, one page at a time; key is an item's sort key,
// one part (its id) unless the list says otherwise.
func servePage[T, V any](w http.ResponseWriter, r *http.Request, list func(context.Context, store.Page) ([]T, error),
	key func(T) []int64, view func(T) (V, error)) {
	p, err := readPage(r.URL.Query(), 1)
	if err != nil {
		writeError(w, r, err)
		return
	}
	items, err := list(r.Context(), p)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writePage(w, r, p, items, key, view)
}
