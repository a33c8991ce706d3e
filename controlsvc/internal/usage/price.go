package usage

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Price is what a model costs, in integer micro-dollars per million tokens per bucket
// (USD 2.50 per million tokens = 2_500_000), so cost arithmetic stays exact.
type Price struct {
	Input      int64
	Output     int64
	CacheRead  int64
	CacheWrite int64 // the 5-minute cache write (OpenAI: the input price)
	// CacheWrite1h prices the part of CacheCreation written with a 1-hour TTL; 0 means
	// CacheWrite.
	CacheWrite1h int64
	// Long is the long-context tier (Long.Above 0: none): a request whose prompt (input,
	// cache reads and cache writes) exceeds Long.Above tokens is priced by Long entirely.
	Long Tier
}

// Tier is a long-context price tier, e.g. Claude Sonnet 4.5 above 200k prompt tokens.
type Tier struct {
	Above      int64
	Input      int64
	Output     int64
	CacheRead  int64
	CacheWrite int64
}

// For is the price of a request of t's tokens: the long-context tier when its prompt exceeds
// the tier's threshold, else p itself.
func (p Price) For(t Tokens) Price {
	if p.Long.Above <= 0 || t.Input+t.CacheRead+t.CacheCreation <= p.Long.Above {
		return p
	}
	l := p.Long
	return Price{Input: l.Input, Output: l.Output, CacheRead: l.CacheRead, CacheWrite: l.CacheWrite,
		CacheWrite1h: max(l.CacheWrite, p.CacheWrite1h)}
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
