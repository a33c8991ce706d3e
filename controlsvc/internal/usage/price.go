package usage

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/poolgate/poolgate/controlsvc/internal/money"
)

// Price is what a model costs, in integer micro-dollars per million tokens per bucket
// (USD 2.50 per million tokens = 2_500_000), so cost arithmetic stays exact.
type Price struct {
	Input      int64
	Output     int64
	CacheRead  int64
	CacheWrite int64
}

// MaxModelPatternLen bounds a price key.
const MaxModelPatternLen = 128

// Errors of ValidPattern.
var (
	ErrEmptyPattern   = errors.New("model must not be empty")
	ErrPatternTooLong = fmt.Errorf("model must be at most %d characters", MaxModelPatternLen)
	ErrPatternStar    = errors.New("model may contain '*' only as its last character")
	ErrPatternSpace   = errors.New("model must not contain whitespace or control characters")
)

// NormalizePattern lower-cases and trims a price key and checks it: an exact model name, or
// a prefix followed by a single trailing '*'.
func NormalizePattern(p string) (string, error) {
	p = strings.ToLower(strings.TrimSpace(p))
	switch {
	case p == "" || p == "*":
		return "", ErrEmptyPattern
	case len(p) > MaxModelPatternLen:
		return "", ErrPatternTooLong
	case strings.Contains(p[:len(p)-1], "*"):
		return "", ErrPatternStar
	case strings.IndexFunc(p, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0:
		return "", ErrPatternSpace
	}
	return p, nil
}

// PriceTable resolves a model name to its price: the exact key first, else the longest
// '*'-prefix key that matches. Keys are lower case and lookups case-insensitive. A table is
// immutable once built and safe for concurrent use.
type PriceTable struct {
	exact    map[string]Price
	prefixes []prefixPrice // longest prefix first
}

type prefixPrice struct {
	prefix string
	key    string
	price  Price
}

// NewPriceTable builds a table from keys as NormalizePattern accepts them. Invalid keys are
// an error: a price nobody can match is an operator's mistake worth hearing about.
func NewPriceTable(entries map[string]Price) (*PriceTable, error) {
	t := &PriceTable{exact: make(map[string]Price, len(entries))}
	for k, p := range entries {
		key, err := NormalizePattern(k)
		if err != nil {
			return nil, fmt.Errorf("price key %q: %w", k, err)
		}
		if prefix, ok := strings.CutSuffix(key, "*"); ok {
			t.prefixes = append(t.prefixes, prefixPrice{prefix: prefix, key: key, price: p})
		} else {
			t.exact[key] = p
		}
	}
	sort.Slice(t.prefixes, func(i, j int) bool {
		a, b := t.prefixes[i].prefix, t.prefixes[j].prefix
		if len(a) != len(b) {
			return len(a) > len(b)
		}
		return a < b
	})
	return t, nil
}

// Lookup finds the price of model and the key that matched.
func (t *PriceTable) Lookup(model string) (Price, string, bool) {
	m := strings.ToLower(strings.TrimSpace(model))
	if t == nil || m == "" {
		return Price{}, "", false
	}
	if p, ok := t.exact[m]; ok {
		return p, m, true
	}
	for _, e := range t.prefixes {
		if strings.HasPrefix(m, e.prefix) {
			return e.price, e.key, true
		}
	}
	return Price{}, "", false
}

// PricedModel is the model a request is priced by: the model sent upstream after the
// account's mapping, or the requested model when no mapping applied.
func PricedModel(upstreamModel, model string) string {
	if upstreamModel != "" {
		return upstreamModel
	}
	return model
}

//go:embed default_prices.json
var defaultPricesJSON []byte

// priceText is one entry of default_prices.json: USD per million tokens as decimal text.
type priceText struct {
	Input      string `json:"input"`
	Output     string `json:"output"`
	CacheRead  string `json:"cache_read"`
	CacheWrite string `json:"cache_write"`
}

var defaultPrices = mustParseDefaultPrices(defaultPricesJSON)

// DefaultPrices returns a copy of the shipped price table (default_prices.json).
func DefaultPrices() map[string]Price {
	out := make(map[string]Price, len(defaultPrices))
	for k, v := range defaultPrices {
		out[k] = v
	}
	return out
}

func mustParseDefaultPrices(data []byte) map[string]Price {
	out, err := parsePriceFile(data)
	if err != nil {
		panic("usage: default_prices.json: " + err.Error()) // a broken shipped file is a build defect; tests catch it
	}
	return out
}

// parsePriceFile reads a price file: {"prices": {"<key>": {"input": "2.50", …}}}. Every
// bucket is required, so no price is free by omission.
func parsePriceFile(data []byte) (map[string]Price, error) {
	var f struct {
		Prices map[string]priceText `json:"prices"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&f); err != nil {
		return nil, err
	}
	if len(f.Prices) == 0 {
		return nil, errors.New("no prices")
	}
	out := make(map[string]Price, len(f.Prices))
	for k, pt := range f.Prices {
		key, err := NormalizePattern(k)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k, err)
		}
		var p Price
		for _, b := range []struct {
			name string
			text string
			dst  *int64
		}{
			{"input", pt.Input, &p.Input}, {"output", pt.Output, &p.Output},
			{"cache_read", pt.CacheRead, &p.CacheRead}, {"cache_write", pt.CacheWrite, &p.CacheWrite},
		} {
			if b.text == "" {
				return nil, fmt.Errorf("key %q: %s is missing", k, b.name)
			}
			v, err := money.Parse(b.text)
			if err != nil || v < 0 {
				return nil, fmt.Errorf("key %q: %s %q is not a non-negative amount with at most 6 decimals", k, b.name, b.text)
			}
			*b.dst = v
		}
		out[key] = p
	}
	return out, nil
}
