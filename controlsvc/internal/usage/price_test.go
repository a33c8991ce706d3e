package usage

import "testing"

func TestLookupPrice(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		model  string
		want   Price
		wantOK bool
	}{
		{name: "exact", model: "gpt-4o", want: defaultPrices["gpt-4o"], wantOK: true},
		{name: "dated variant", model: "gpt-4o-2024-08-06", want: defaultPrices["gpt-4o"], wantOK: true},
		{name: "longest prefix beats shorter", model: "gpt-4o-mini-2024-07-18", want: defaultPrices["gpt-4o-mini"], wantOK: true},
		{name: "gpt-5-mini is not gpt-5", model: "gpt-5-mini", want: defaultPrices["gpt-5-mini"], wantOK: true},
		{name: "gpt-4.1-mini dated", model: "gpt-4.1-mini-2025-04-14", want: defaultPrices["gpt-4.1-mini"], wantOK: true},
		{name: "claude dated", model: "claude-sonnet-4-20250514", want: defaultPrices["claude-sonnet-4"], wantOK: true},
		{name: "opus 4.5 has its own price", model: "claude-opus-4-5-20251101", want: defaultPrices["claude-opus-4-5"], wantOK: true},
		{name: "opus 4.1 takes opus 4", model: "claude-opus-4-1-20250805", want: defaultPrices["claude-opus-4"], wantOK: true},
		{name: "case-insensitive", model: "GPT-4o", want: defaultPrices["gpt-4o"], wantOK: true},
		{name: "unknown", model: "llama-3-70b", wantOK: false},
		{name: "empty", model: "", wantOK: false},
		{name: "prefix of a key is not a match", model: "gpt-4", wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := LookupPrice(tt.model)
			if ok != tt.wantOK || got != tt.want {
				t.Errorf("LookupPrice(%q) = %+v, %v; want %+v, %v", tt.model, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestPriceFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		upstream     string
		model        string
		want         Price
		wantPricedBy string
		wantOK       bool
	}{
		{name: "upstream model wins", upstream: "gpt-4o-mini", model: "gpt-4o", want: defaultPrices["gpt-4o-mini"], wantPricedBy: "gpt-4o-mini", wantOK: true},
		{name: "no upstream model", upstream: "", model: "gpt-4o", want: defaultPrices["gpt-4o"], wantPricedBy: "gpt-4o", wantOK: true},
		{name: "unknown upstream falls back", upstream: "my-finetune", model: "o4-mini", want: defaultPrices["o4-mini"], wantPricedBy: "o4-mini", wantOK: true},
		{name: "neither known", upstream: "x", model: "y", wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, by, ok := PriceFor(tt.upstream, tt.model)
			if ok != tt.wantOK || got != tt.want || by != tt.wantPricedBy {
				t.Errorf("PriceFor = %+v, %q, %v; want %+v, %q, %v", got, by, ok, tt.want, tt.wantPricedBy, tt.wantOK)
			}
		})
	}
}
