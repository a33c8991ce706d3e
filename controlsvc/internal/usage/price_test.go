package usage

import (
	"errors"
	"strings"
	"testing"
)

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

func TestPricedModel(t *testing.T) {
	t.Parallel()
	if got := PricedModel("gpt-4o-mini", "gpt-4o"); got != "gpt-4o-mini" {
		t.Errorf("mapped: %q", got)
	}
	if got := PricedModel("", "gpt-4o"); got != "gpt-4o" {
		t.Errorf("unmapped: %q", got)
	}
}
