package clis

import (
	"encoding/json"
	"fmt"
	"github.com/poolgate/poolgate/internal/gatewaytest"
	"math"
	"net/http"
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
// and the accounts (contract H), with the check the other stack-owning tests share.
func assertNoSlotsHeld(t *testing.T, userIDs, accountIDs []int64) {
	t.Helper()
	c := &gatewaytest.Client{T: t, S: gw, HTTP: http.DefaultClient}
	c.WaitNoSlots(userIDs, accountIDs, 10*time.Second)
}
