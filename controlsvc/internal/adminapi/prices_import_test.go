package adminapi

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/catalogue"
	"github.com/poolgate/poolgate/controlsvc/internal/prices"
)

// TestPricesImport: a LiteLLM catalogue imports all or nothing; an imported entry prices by
// its exact name (its long-context tier and max output kept) and beats a wildcard.
func TestPricesImport(t *testing.T) {
	var cache *prices.Cache
	e := newEnvWith(t, func(o *Options, rdb *redis.Client) {
		c, err := prices.NewCache(o.Store, rdb, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		cache = c
		o.Prices = c
	})
	t.Cleanup(func() { catalogue.SetCurrent(catalogue.Shipped()) })
	const importPath = pricesPath + "/import"
	e.mustCall(http.MethodPut, pricesPath+"/new-claude*", map[string]any{"input": 15, "output": 75}, http.StatusCreated, nil)

	valid := `{"sample_spec":{"max_tokens":"LEGACY parameter"},
	  "new-claude-9":{"input_cost_per_token":4e-06,"output_cost_per_token":2e-05,"cache_read_input_token_cost":4e-07,
	    "cache_creation_input_token_cost":5e-06,"cache_creation_input_token_cost_above_1hr":8e-06,
	    "input_cost_per_token_above_200k_tokens":8e-06,"output_cost_per_token_above_200k_tokens":3e-05,
	    "max_input_tokens":1000000,"max_output_tokens":96000,"litellm_provider":"anthropic","supports_vision":true},
	  "dall-e-9":{"output_cost_per_image":0.04}}`
	var res importResult
	e.mustCall(http.MethodPost, importPath, valid, http.StatusOK, &res)
	if res.Imported != 1 || res.Created != 1 || res.Skipped != 2 {
		t.Fatalf("import = %+v", res)
	}
	var got priceView
	e.mustCall(http.MethodGet, pricesPath+"/resolve?model=new-claude-9", nil, http.StatusOK, &got)
	if got.Model != "new-claude-9" || got.Input != "4" || got.Output != "20" || got.CacheWrite != "5" || got.Source != "override" ||
		got.CacheWrite1h != "8" || got.MaxOutputTokens != 96000 || got.LongContext == nil || got.LongContext.AboveTokens != 200000 ||
		got.LongContext.Output != "30" {
		t.Errorf("imported entry = %+v (the exact import must beat new-claude*)", got)
	}
	p, key, ok := cache.Table().Lookup("new-claude-9")
	if !ok || key != "new-claude-9" || p.CacheWrite1h != 8_000_000 || p.Long.Above != 200_000 || p.Long.Output != 30_000_000 {
		t.Errorf("cache prices new-claude-9 as %+v by %q", p, key)
	}
	if n, ok := catalogue.MaxOutput("new-claude-9"); !ok || n != 96000 {
		t.Errorf("MaxOutput(new-claude-9) = %d, %v", n, ok)
	}

	// Invalid documents change nothing, even when the valid part comes first.
	for _, tt := range []struct{ name, body, msg string }{
		{"string price", `{"a-1":{"input_cost_per_token":1e-06},"a-2":{"input_cost_per_token":"1e-06"}}`, "must be a number"},
		{"negative", `{"a-1":{"input_cost_per_token":1e-06},"a-2":{"input_cost_per_token":-1e-06}}`, "must not be negative"},
		{"not an object", `[]`, "JSON object"},
		{"nothing priced", `{"dall-e-9":{}}`, "no model has"},
	} {
		e.wantError(http.MethodPost, importPath, tt.body, http.StatusBadRequest, "invalid_request_error", tt.msg)
	}
	e.wantError(http.MethodGet, pricesPath+"/resolve?model=a-1", nil, http.StatusNotFound, "not_found_error", "No price")
	big := `{"m":{"input_cost_per_token":1e-06,"pad":"` + strings.Repeat("x", maxImportBytes) + `"}}`
	e.wantError(http.MethodPost, importPath, big, http.StatusRequestEntityTooLarge, "invalid_request_error", "too large")
	e.wantError(http.MethodPut, importPath, `{}`, http.StatusMethodNotAllowed, "invalid_request_error", "")
}

// TestUnpricedList: models without a price asked for in the last day, counted, most asked
// first; a model priced since is left out.
func TestUnpricedList(t *testing.T) {
	var rdb *redis.Client
	e := newEnvWith(t, func(o *Options, r *redis.Client) { rdb = r })
	ctx := context.Background()
	now := time.Now()
	for _, n := range []struct {
		model string
		at    time.Time
	}{
		{"llama-9", now}, {"llama-9", now.Add(-3 * time.Hour)}, {"llama-9", now.Add(-23 * time.Hour)},
		{"mistral-x", now}, {"old-model", now.Add(-25 * time.Hour)}, {"soon-priced", now},
	} {
		if err := prices.NoteUnpriced(ctx, rdb, n.model, n.at); err != nil {
			t.Fatal(err)
		}
	}
	e.mustCall(http.MethodPut, pricesPath+"/soon-priced", map[string]any{"input": 1, "output": 1}, http.StatusCreated, nil)
	var list struct {
		Items []prices.UnpricedModel `json:"items"`
	}
	e.mustCall(http.MethodGet, pricesPath+"/unpriced", nil, http.StatusOK, &list)
	want := []prices.UnpricedModel{{Model: "llama-9", Count: 3}, {Model: "mistral-x", Count: 1}}
	if len(list.Items) != len(want) || list.Items[0] != want[0] || list.Items[1] != want[1] {
		t.Errorf("unpriced = %+v, want %+v", list.Items, want)
	}
}
