package usage

import (
	"errors"
	"strings"
	"testing"
)

func defaultTable(t *testing.T) *PriceTable {
	t.Helper()
	tab, err := NewPriceTable(DefaultPrices())
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func TestDefaultPricesParse(t *testing.T) {
	t.Parallel()
	p := DefaultPrices()
	if len(p) < 10 {
		t.Fatalf("default table has %d entries", len(p))
	}
	// One entry checked digit for digit against default_prices.json.
	if got, want := p["gpt-4o-mini*"], (Price{Input: 150_000, Output: 600_000, CacheRead: 75_000, CacheWrite: 150_000}); got != want {
		t.Errorf("gpt-4o-mini* = %+v, want %+v", got, want)
	}
	for k, v := range p {
		if v.Input <= 0 || v.Output <= 0 || v.CacheRead <= 0 || v.CacheWrite <= 0 {
			t.Errorf("%s has a zero bucket: %+v", k, v)
		}
	}
}

func TestPriceTableLookup(t *testing.T) {
	t.Parallel()
	tab := defaultTable(t)
	d := DefaultPrices()
	tests := []struct {
		name    string
		model   string
		wantKey string
	}{
		{name: "family name", model: "gpt-4o", wantKey: "gpt-4o*"},
		{name: "dated variant", model: "gpt-4o-2024-08-06", wantKey: "gpt-4o*"},
		{name: "longest prefix beats shorter", model: "gpt-4o-mini-2024-07-18", wantKey: "gpt-4o-mini*"},
		{name: "gpt-5-mini is not gpt-5", model: "gpt-5-mini", wantKey: "gpt-5-mini*"},
		{name: "gpt-4.1-mini dated", model: "gpt-4.1-mini-2025-04-14", wantKey: "gpt-4.1-mini*"},
		{name: "o3-mini is not o3", model: "o3-mini", wantKey: "o3-mini*"},
		{name: "claude dated", model: "claude-sonnet-4-20250514", wantKey: "claude-sonnet-4*"},
		{name: "opus 4.5 has its own price", model: "claude-opus-4-5-20251101", wantKey: "claude-opus-4-5*"},
		{name: "opus 4.1 takes opus 4", model: "claude-opus-4-1-20250805", wantKey: "claude-opus-4*"},
		{name: "case-insensitive", model: "GPT-4o", wantKey: "gpt-4o*"},
		{name: "unknown", model: "llama-3-70b"},
		{name: "empty", model: ""},
		{name: "prefix of a key is not a match", model: "gpt-4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, key, ok := tab.Lookup(tt.model)
			if ok != (tt.wantKey != "") || key != tt.wantKey || got != d[tt.wantKey] {
				t.Errorf("Lookup(%q) = %+v, %q, %v; want %+v, %q", tt.model, got, key, ok, d[tt.wantKey], tt.wantKey)
			}
		})
	}
}

func TestPriceTableExactBeatsPrefix(t *testing.T) {
	t.Parallel()
	tab, err := NewPriceTable(map[string]Price{
		"m*":       {Input: 1},
		"m-long*":  {Input: 2},
		"m-long-x": {Input: 3},
		"Other":    {Input: 4},
	})
	if err != nil {
		t.Fatal(err)
	}
	for model, want := range map[string]int64{"m": 1, "m-a": 1, "m-long": 2, "m-long-y": 2, "m-long-x": 3, "m-long-xy": 2, "other": 4, "OTHER": 4} {
		got, _, ok := tab.Lookup(model)
		if !ok || got.Input != want {
			t.Errorf("Lookup(%q) = %d, %v; want %d", model, got.Input, ok, want)
		}
	}
	if _, _, ok := tab.Lookup("other-1"); ok {
		t.Error("an exact key matched a longer name")
	}
}

func TestNormalizePattern(t *testing.T) {
	t.Parallel()
	ok := map[string]string{"GPT-4o": "gpt-4o", " gpt-4o* ": "gpt-4o*", "org/model:v1": "org/model:v1"}
	for in, want := range ok {
		if got, err := NormalizePattern(in); err != nil || got != want {
			t.Errorf("NormalizePattern(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := map[string]error{"": ErrEmptyPattern, "*": ErrEmptyPattern, "a*b": ErrPatternStar, "a**": ErrPatternStar,
		"a b": ErrPatternSpace, "a\tb*": ErrPatternSpace, strings.Repeat("m", MaxModelPatternLen+1): ErrPatternTooLong}
	for in, want := range bad {
		if _, err := NormalizePattern(in); !errors.Is(err, want) {
			t.Errorf("NormalizePattern(%q) = %v; want %v", in, err, want)
		}
	}
	if _, err := NewPriceTable(map[string]Price{"a*b": {}}); !errors.Is(err, ErrPatternStar) {
		t.Errorf("NewPriceTable with a bad key: %v", err)
	}
}

func TestParsePriceFileRefusesGaps(t *testing.T) {
	t.Parallel()
	for name, doc := range map[string]string{
		"missing bucket": `{"prices":{"m":{"input":"1","output":"2","cache_read":"0.1"}}}`,
		"negative":       `{"prices":{"m":{"input":"-1","output":"2","cache_read":"0.1","cache_write":"1"}}}`,
		"too precise":    `{"prices":{"m":{"input":"0.0000001","output":"2","cache_read":"0.1","cache_write":"1"}}}`,
		"not a number":   `{"prices":{"m":{"input":"one","output":"2","cache_read":"0.1","cache_write":"1"}}}`,
		"empty":          `{"prices":{}}`,
		"bad key":        `{"prices":{"a*b":{"input":"1","output":"2","cache_read":"0.1","cache_write":"1"}}}`,
	} {
		if _, err := parsePriceFile([]byte(doc)); err == nil {
			t.Errorf("%s: parsed without error", name)
		}
	}
}

func TestPricedModel(t *testing.T) {
	t.Parallel()
	if got := PricedModel("gpt-4o-mini", "gpt-4o"); got != "gpt-4o-mini" {
		t.Errorf("mapped: %q", got)
	}
	if got := PricedModel("", "gpt-4o"); got != "gpt-4o" {
		t.Errorf("unmapped: %q", got)
	}
}
