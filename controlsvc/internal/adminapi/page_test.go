package adminapi

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// pageOf is one page of any admin list, its items kept raw.
type pageOf struct {
	Items      []json.RawMessage `json:"items"`
	NextCursor *string           `json:"next_cursor"`
}

// walkPages follows next_cursor from the first page of path at limit per page and returns
// every item in order, checking that no page is larger than limit.
func (e *env) walkPages(path string, limit int) []string {
	e.t.Helper()
	var all []string
	cursor := ""
	for range 1000 {
		q := url.Values{"limit": {fmt.Sprint(limit)}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		var p pageOf
		e.mustCall(http.MethodGet, path+sep+q.Encode(), nil, http.StatusOK, &p)
		if len(p.Items) > limit {
			e.t.Fatalf("%s: a page of %d items at limit %d", path, len(p.Items), limit)
		}
		for _, it := range p.Items {
			all = append(all, string(it))
		}
		if p.NextCursor == nil {
			return all
		}
		if len(p.Items) == 0 {
			e.t.Fatalf("%s: an empty page with a next cursor", path)
		}
		cursor = *p.NextCursor
	}
	e.t.Fatalf("%s: no last page", path)
	return nil
}

// Every admin list is a keyset page: walked a page at a time it yields what one large page
// holds, in the same order, each item once, and the last page says so with next_cursor null.
func TestAdminListsArePaginated(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var users, groups []int64
	for i := range 3 {
		users = append(users, e.createUser(fmt.Sprint("pager-", i)))
		groups = append(groups, e.createGroup(fmt.Sprint("pager-", i), "openai"))
	}
	subGroup := e.createSubscriptionGroup("pager-sub", "")
	for i, u := range users {
		e.createAccount(fmt.Sprint("pager-", i), groups[0])
		e.createKey(u, groups[0])
		e.createKey(u, groups[1])
		e.mustCall(http.MethodPost, "/api/v1/admin/subscriptions", map[string]any{"user_id": u, "group_id": subGroup,
			"duration_days": 30}, http.StatusCreated, nil)
		e.mustCall(http.MethodPost, rulesPath, map[string]any{"name": fmt.Sprint("r", i), "error_codes": []int{400 + i},
			"priority": 3 - i}, http.StatusCreated, nil)
		e.mustCall(http.MethodPut, "/api/v1/admin/users/"+itoa(users[0])+"/group-rates/"+itoa(groups[i]),
			`{"rate_multiplier":1.5}`, http.StatusOK, nil)
		e.mustCall(http.MethodPost, "/api/v1/admin/users/"+itoa(users[0])+"/balance",
			map[string]any{"amount_usd": i + 1, "note": "n"}, http.StatusOK, nil)
	}
	base := "/api/v1/admin"
	for _, path := range []string{
		"/users", "/groups", "/accounts", "/api-keys", "/api-keys?user_id=" + itoa(users[1]),
		"/subscriptions", "/subscriptions?group_id=" + itoa(subGroup), "/error-passthrough-rules",
		"/users/" + itoa(users[0]) + "/group-rates", "/users/" + itoa(users[0]) + "/balance-adjustments", "/prices",
	} {
		t.Run(path, func(t *testing.T) {
			whole := e.walkPages(base+path, 500)
			if len(whole) < 2 {
				t.Fatalf("%d items, want at least 2 to page through", len(whole))
			}
			for _, limit := range []int{1, 2} {
				if got := e.walkPages(base+path, limit); !reflect.DeepEqual(got, whole) {
					t.Errorf("paged by %d:\n%v\nwant\n%v", limit, got, whole)
				}
			}
			// Without a limit: the default page size, here one page.
			var p pageOf
			e.mustCall(http.MethodGet, base+path, nil, http.StatusOK, &p)
			if p.NextCursor != nil || len(p.Items) != len(whole) {
				t.Errorf("default page: %d items, next %v", len(p.Items), p.NextCursor)
			}
		})
	}
}

// A limit outside 1..500 or a cursor this API did not make is a 400 in the admin API's
// error format.
func TestAdminListsRefuseBadPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	user := e.createUser("bad-pages")
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	lists := []string{"/users", "/groups", "/accounts", "/api-keys", "/subscriptions", "/error-passthrough-rules",
		"/users/" + itoa(user) + "/group-rates", "/users/" + itoa(user) + "/balance-adjustments", "/prices"}
	tests := []struct {
		name, query, msg string
	}{
		{"limit above 500", "limit=501", "limit must be an integer from 1 to 500"},
		{"limit zero", "limit=0", "limit must be an integer from 1 to 500"},
		{"limit not a number", "limit=ten", "limit must be an integer from 1 to 500"},
		{"cursor not base64", "cursor=%21%21", "cursor is not a cursor returned by this API"},
		{"cursor of another version", "cursor=" + b64("x9:1"), "cursor is not a cursor returned by this API"},
		{"cursor too long", "cursor=" + strings.Repeat("A", 2000), "cursor is not a cursor returned by this API"},
	}
	for _, path := range lists {
		for _, tt := range tests {
			e.wantStatusError(http.MethodGet, "/api/v1/admin"+path+"?"+tt.query, "", http.StatusBadRequest, tt.msg)
		}
	}
	// A cursor of a one-part key does not fit the rules' (priority, id), nor the reverse.
	e.wantStatusError(http.MethodGet, "/api/v1/admin/error-passthrough-rules?cursor="+b64("p1:5"), "", http.StatusBadRequest, "cursor")
	e.wantStatusError(http.MethodGet, "/api/v1/admin/users?cursor="+b64("p1:1,5"), "", http.StatusBadRequest, "cursor")
}
