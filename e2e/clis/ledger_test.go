package clis

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"
	"time"
)

// The ledger side of a run: usage records and slots, read through the admin API.

func num(o obj, field string) int64 {
	switch v := o[field].(type) {
	case float64:
		return int64(v)
	case int:
		return int64(v)
	case json.Number:
		n, _ := v.Int64()
		return n
	}
	return 0
}

func usdOf(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case json.Number:
		f, _ := x.Float64()
		return f
	case string:
		var f float64
		fmt.Sscan(x, &f)
		return f
	}
	return math.NaN()
}

// usageRecords waits until the key has at least n settled records (reports are
// asynchronous) and returns them oldest first.
func usageRecords(t *testing.T, keyID int64, n int) []obj {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, out := admin(t, "GET", fmt.Sprintf("/usage?api_key_id=%d", keyID), nil)
		items, _ := out["items"].([]any)
		if code == 200 && len(items) >= n {
			recs := make([]obj, len(items))
			for i, it := range items {
				b, _ := json.Marshal(it)
				d := json.NewDecoder(strings.NewReader(string(b)))
				d.UseNumber()
				_ = d.Decode(&recs[i])
			}
			sort.Slice(recs, func(i, j int) bool { return num(recs[i], "id") < num(recs[j], "id") })
			// Give late reports (a record the CLI's calls should not have made) a moment.
			time.Sleep(300 * time.Millisecond)
			if _, again := admin(t, "GET", fmt.Sprintf("/usage?api_key_id=%d", keyID), nil); len(again["items"].([]any)) != len(items) {
				continue
			}
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %d usage records for key %d, have %d: %v", n, keyID, len(items), items)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// assertNoSlotsHeld waits until controlsvc reports no active or waiting slot for the user
// and the accounts (contract H).
func assertNoSlotsHeld(t *testing.T, userIDs, accountIDs []int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := mustAdmin(t, "GET", "/concurrency", nil)
		busy := busySlots(out, "users", "user_id", userIDs) + busySlots(out, "accounts", "account_id", accountIDs)
		if busy == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slots still held after the run: %s", busy)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func busySlots(out obj, list, idField string, ids []int64) string {
	want := map[int64]bool{}
	for _, i := range ids {
		want[i] = true
	}
	items, _ := out[list].([]any)
	var busy []string
	seen := map[int64]bool{}
	for _, it := range items {
		o := it.(obj)
		i := int64(o[idField].(float64))
		if !want[i] {
			continue
		}
		seen[i] = true
		if o["active"].(float64) != 0 || o["waiting"].(float64) != 0 {
			busy = append(busy, fmt.Sprintf("%s %d: %v", list, i, o))
		}
	}
	for i := range want {
		if !seen[i] {
			busy = append(busy, fmt.Sprintf("%s %d missing from /concurrency", list, i))
		}
	}
	return strings.Join(busy, "; ")
}
