package adminapi

import (
	"net/http"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/catalogue"
	"github.com/poolgate/poolgate/controlsvc/internal/prices"
)

const pricesPath = "/api/v1/admin/prices"

func TestPricesAdmin(t *testing.T) {
	t.Parallel()
	var cache *prices.Cache
	e := newEnvWith(t, func(o *Options, rdb *redis.Client) {
		c, err := prices.NewCache(o.Store, rdb, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		cache = c
		o.Prices = c
	})

	var list listBody[priceView]
	e.mustCall(http.MethodGet, pricesPath, nil, http.StatusOK, &list)
	defaults := catalogue.Shipped().Entries()
	if len(list.Items) != len(defaults) {
		t.Fatalf("GET /prices lists %d entries, want the %d defaults", len(list.Items), len(defaults))
	}
	for _, it := range list.Items {
		if it.Source != prices.SourceDefault || it.UpdatedAt != nil {
			t.Errorf("default entry %+v", it)
		}
	}

	var got priceView
	e.mustCall(http.MethodGet, pricesPath+"/resolve?model=gpt-4o-2024-08-06", nil, http.StatusOK, &got)
	if got.Model != "gpt-4o-2024-08-06" || got.Input != "2.5" || got.Output != "10" || got.CacheRead != "1.25" || got.Source != "default" {
		t.Errorf("resolve gpt-4o-2024-08-06 = %+v", got)
	}
	e.wantError(http.MethodGet, pricesPath+"/resolve?model=llama-3", nil, http.StatusNotFound, "not_found_error",
		"No price configured for model llama-3")

	// An override of a family, and a more specific new key; cache prices default to input.
	e.mustCall(http.MethodPut, pricesPath+"/gpt-4o*", map[string]any{"input": 2, "output": 8.5, "note": "negotiated"},
		http.StatusCreated, &got)
	if got.Model != "gpt-4o*" || got.Input != "2" || got.Output != "8.5" || got.CacheRead != "2" || got.CacheWrite != "2" ||
		got.Source != "override" || got.Note != "negotiated" || got.UpdatedAt == nil {
		t.Errorf("PUT gpt-4o* = %+v", got)
	}
	e.mustCall(http.MethodPut, pricesPath+"/GPT-4o", map[string]any{"input": 0.000001, "output": 0, "cache_read": 0, "cache_write": 0},
		http.StatusCreated, &got)
	if got.Model != "gpt-4o" || got.Input != "0.000001" || got.Output != "0" {
		t.Errorf("PUT GPT-4o = %+v", got)
	}
	e.mustCall(http.MethodPut, pricesPath+"/gpt-4o*", map[string]any{"input": 3, "output": 9}, http.StatusOK, &got)
	e.mustCall(http.MethodGet, pricesPath+"/resolve?model=gpt-4o", nil, http.StatusOK, &got)
	if got.Model != "gpt-4o" {
		t.Errorf("exact key does not win: %+v", got)
	}
	e.mustCall(http.MethodGet, pricesPath+"/resolve?model=gpt-4o-2099-01-01", nil, http.StatusOK, &got)
	if got.Model != "gpt-4o*" || got.Input != "3" || got.Source != "override" {
		t.Errorf("override not in force: %+v", got)
	}
	// An exact catalogue entry beats the operator's wildcard (docs/billing.md, "Prices and
	// the model catalogue").
	e.mustCall(http.MethodGet, pricesPath+"/resolve?model=gpt-4o-2024-08-06", nil, http.StatusOK, &got)
	if got.Model != "gpt-4o-2024-08-06" || got.Input != "2.5" || got.Source != "default" {
		t.Errorf("the wildcard beat an exact catalogue entry: %+v", got)
	}
	// The notified cache (this instance) prices with the override at once.
	p, key, ok := cache.Table().Lookup("gpt-4o-2099-01-01")
	if !ok || key != "gpt-4o*" || p.Input != 3_000_000 || p.Output != 9_000_000 {
		t.Errorf("cache after PUT: %+v %q %v", p, key, ok)
	}

	for _, tt := range []struct {
		name, path string
		body       any
		msg        string
	}{
		{"star inside", pricesPath + "/a*b", map[string]any{"input": 1, "output": 1}, "'*' only as its last character"},
		{"lone star", pricesPath + "/*", map[string]any{"input": 1, "output": 1}, "must not be empty"},
		{"missing output", pricesPath + "/m", map[string]any{"input": 1}, "input and output are required"},
		{"negative", pricesPath + "/m", map[string]any{"input": -1, "output": 1}, "input must not be negative"},
		{"too precise", pricesPath + "/m", map[string]any{"input": 0.0000001, "output": 1}, "at most 6 decimal places"},
		{"string", pricesPath + "/m", `{"input":"1","output":1}`, "input must be a number"},
		{"unknown field", pricesPath + "/m", map[string]any{"input": 1, "output": 1, "cached": 1}, "cached"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.wantError(http.MethodPut, tt.path, tt.body, http.StatusBadRequest, "invalid_request_error", tt.msg)
		})
	}

	// Deleting the wildcard leaves its models unpriced (the catalogue has exact names only).
	e.mustCall(http.MethodDelete, pricesPath+"/gpt-4o*", nil, http.StatusNoContent, nil)
	e.wantError(http.MethodDelete, pricesPath+"/gpt-4o*", nil, http.StatusNotFound, "not_found_error", "no price override for gpt-4o*")
	e.mustCall(http.MethodGet, pricesPath+"/resolve?model=gpt-4o-mini", nil, http.StatusOK, &got)
	if got.Model != "gpt-4o-mini" || got.Source != "default" {
		t.Errorf("after delete: %+v", got)
	}
	if p, key, ok := cache.Table().Lookup("gpt-4o-2099-01-01"); ok {
		t.Errorf("cache after DELETE prices gpt-4o-2099-01-01 at %+v by %q", p, key)
	}
	e.mustCall(http.MethodGet, pricesPath, nil, http.StatusOK, &list)
	if len(list.Items) != len(defaults) {
		t.Errorf("after an override of a default and a deleted new key: %d entries, want %d", len(list.Items), len(defaults))
	}
	if status, _ := e.callWithToken(http.MethodGet, pricesPath, nil, ""); status != http.StatusUnauthorized {
		t.Errorf("GET without a token = %d, want 401", status)
	}
}

// Compile-time guard: the price cache is what the API notifies.
var _ ChangeNotifier = (*prices.Cache)(nil)
