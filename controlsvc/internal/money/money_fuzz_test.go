package money

import (
	"encoding/json"
	"errors"
	"math/big"
	"testing"
)

// FuzzParse: money text either parses to the exact number of micros it denotes (checked
// with big.Rat, independently of Parse's own steps) or is refused with one of the package's
// errors; an accepted text is a JSON number; Format of the result is the shortest text of
// the same amount and parses back to it (parse(format(x)) == x). Exponents beyond 30 are
// refused before any expansion, so 1e999999999 costs nothing.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"0", "12.5", "-0.000001", "1e2", "1.500000", "9223372036854.775807",
		"9223372036854.775808", "1e999999999", "0.1e-30", "\"1\"", "01", "1.", "-", "1e+30"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 4096 {
			return
		}
		v, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrNotNumber) && !errors.Is(err, ErrTooPrecise) && !errors.Is(err, ErrOutOfRange) {
				t.Fatalf("Parse(%q): unexpected error %v", s, err)
			}
			return
		}
		if !json.Valid([]byte(s)) || s[0] == '"' {
			t.Fatalf("Parse accepted %q, not a JSON number", s)
		}
		want, ok := new(big.Rat).SetString(s)
		if !ok || want.Cmp(new(big.Rat).SetFrac64(v, PerUnit)) != 0 {
			t.Fatalf("Parse(%q) = %d micros, not the exact amount", s, v)
		}
		text := string(Format(v))
		back, err := Parse(text)
		if err != nil || back != v {
			t.Fatalf("Parse(Format(%d)) = %d, %v (text %q)", v, back, err, text)
		}
		if len(text) > len(s)+2 && len(text) > 22 {
			t.Fatalf("Format(%d) = %q is longer than the input %q", v, text, s)
		}
	})
}

// FuzzFormat: every int64 amount formats to a JSON number that parses back to it.
func FuzzFormat(f *testing.F) {
	for _, v := range []int64{0, 1, -1, PerUnit, 12_500_000, -1 << 63, 1<<63 - 1} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v int64) {
		text := Format(v)
		if !json.Valid([]byte(text)) {
			t.Fatalf("Format(%d) = %q is not JSON", v, text)
		}
		if back, err := Parse(string(text)); err != nil || back != v {
			t.Fatalf("Parse(Format(%d)) = %d, %v (text %q)", v, back, err, text)
		}
	})
}
