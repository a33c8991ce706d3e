package gatewaytest

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Record is the part of a usage record the tests check.
type Record struct {
	RequestID    string
	Status       int64
	CostMicros   int64
	UsageSource  string // "" when the API does not show the field
	OutputTokens int64
}

// UsageCount is the number of usage records of the key, from the usage summary.
func (c *Client) UsageCount(keyID int64) int {
	c.T.Helper()
	out := c.MustAdmin("GET", fmt.Sprintf("/usage/summary?group_by=api_key&api_key_id=%d", keyID), nil)
	total, _ := out["total"].(Obj)
	return int(Integer(c.T, total["requests"]))
}

// ListUsage pages through every usage record of the key.
func (c *Client) ListUsage(keyID int64) []Record {
	c.T.Helper()
	var recs []Record
	cursor := ""
	for page := 0; page < 100; page++ {
		path := fmt.Sprintf("/usage?api_key_id=%d&limit=500", keyID)
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		out := c.MustAdmin("GET", path, nil)
		items, _ := out["items"].([]any)
		for _, it := range items {
			o, _ := it.(Obj)
			r := Record{Status: Integer(c.T, o["status"]), CostMicros: Micros(c.T, o["cost_usd"])}
			r.RequestID, _ = o["request_id"].(string)
			r.UsageSource, _ = o["usage_source"].(string)
			if v, ok := o["output_tokens"]; ok && v != nil {
				r.OutputTokens = Integer(c.T, v)
			}
			recs = append(recs, r)
		}
		next, _ := out["next_cursor"].(string)
		if next == "" {
			return recs
		}
		cursor = next
	}
	c.T.Fatal("more than 100 pages of usage records")
	return nil
}

// DrainedUsage waits until the plugin's reporters have delivered (the key's usage count
// reaches want, or stops moving for longer than the reporter's largest backoff), then lists
// every record of the key.
func (c *Client) DrainedUsage(keyID int64, want int, within time.Duration) []Record {
	c.T.Helper()
	start := time.Now()
	deadline := start.Add(within)
	last, lastChange := -1, start
	for {
		n := c.UsageCount(keyID)
		if n != last {
			last, lastChange = n, time.Now()
		}
		// The reporter's backoff is at most 5 s: stable for longer, nothing more comes.
		if n >= want || time.Since(lastChange) > 8*time.Second || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.T.Logf("usage count %d of %d wanted, %v after the run", last, want, time.Since(start).Round(time.Millisecond))
	time.Sleep(time.Second) // a late duplicate would show now
	return c.ListUsage(keyID)
}

// CheckLedger: one record per successful request (okIDs, by X-Poolgate-Request-Id), no
// other, no duplicate, each a 200 charged more than 0; it returns Σ cost.
func CheckLedger(t testing.TB, records []Record, okIDs []string) int64 {
	t.Helper()
	ok := make(map[string]bool, len(okIDs))
	for _, id := range okIDs {
		ok[id] = true
	}
	seen := make(map[string]bool, len(records))
	var dup, extra, free []string
	var spent int64
	for _, r := range records {
		spent += r.CostMicros
		if seen[r.RequestID] {
			dup = append(dup, r.RequestID)
		}
		seen[r.RequestID] = true
		if !ok[r.RequestID] || r.Status != http.StatusOK {
			extra = append(extra, fmt.Sprintf("%s (status %d)", r.RequestID, r.Status))
		}
		if r.CostMicros <= 0 {
			free = append(free, fmt.Sprintf("%s costs %d micros", r.RequestID, r.CostMicros))
		}
	}
	var lost []string
	for _, id := range okIDs {
		if !seen[id] {
			lost = append(lost, id)
		}
	}
	if len(records) != len(okIDs) || len(dup)+len(extra)+len(lost) > 0 {
		t.Fatalf("%d usage records for %d successful requests: %d duplicated %v, %d not a success %v, %d lost %v",
			len(records), len(okIDs), len(dup), Head(dup), len(extra), Head(extra), len(lost), Head(lost))
	}
	if len(free) > 0 {
		t.Fatalf("%d records charged nothing: %v", len(free), Head(free))
	}
	return spent
}

// Balance is the user's balance and reserved amount in micro-dollars.
func (c *Client) Balance(userID int64) (balance, reserved int64) {
	c.T.Helper()
	u := c.MustAdmin("GET", fmt.Sprintf("/users/%d", userID), nil)
	return Micros(c.T, u["balance_usd"]), Micros(c.T, u["reserved_usd"])
}

// BusySlots describes the slots the users and accounts still hold or wait for; "" when
// none.
func (c *Client) BusySlots(userIDs, accountIDs []int64) string {
	c.T.Helper()
	out := c.MustAdmin("GET", "/concurrency", nil)
	var busy []string
	for _, l := range []struct {
		list, field string
		ids         []int64
	}{{"users", "user_id", userIDs}, {"accounts", "account_id", accountIDs}} {
		want := map[int64]bool{}
		for _, id := range l.ids {
			want[id] = true
		}
		seen := map[int64]bool{}
		items, _ := out[l.list].([]any)
		for _, it := range items {
			o, _ := it.(Obj)
			id := Integer(c.T, o[l.field])
			if !want[id] {
				continue
			}
			seen[id] = true
			if Integer(c.T, o["active"]) != 0 || Integer(c.T, o["waiting"]) != 0 {
				busy = append(busy, fmt.Sprintf("%s %d: %v", l.list, id, o))
			}
		}
		for id := range want {
			if !seen[id] {
				busy = append(busy, fmt.Sprintf("%s %d missing from /concurrency", l.list, id))
			}
		}
	}
	return strings.Join(busy, "; ")
}

// WaitNoSlots waits up to within until the users and accounts hold no slot and nobody
// waits for one, and returns how long that took.
func (c *Client) WaitNoSlots(userIDs, accountIDs []int64, within time.Duration) time.Duration {
	c.T.Helper()
	start := time.Now()
	for {
		busy := c.BusySlots(userIDs, accountIDs)
		if busy == "" {
			return time.Since(start)
		}
		if time.Since(start) > within {
			c.T.Fatalf("slots still held %s after the run: %s", within, busy)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
