// Package money converts between exact decimal text and integer micro-units (1 USD =
// 1 000 000 micros, a rate of 1.0 = 1 000 000), never through float64.
package money

import (
	"encoding/json"
	"errors"
	"math/big"
	"regexp"
	"strconv"
	"strings"
)

// Money and rates are fixed point with six decimals: 1 USD = 1 000 000 micros. Numbers are
// converted from their exact text, never through float64, so 0.1 stays 100 000 micros.

// PerUnit is the number of micros in one unit.
const PerUnit = 1_000_000

// jsonNumber matches the JSON number grammar, capturing the exponent for a bounds check.
var jsonNumber = regexp.MustCompile(`^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE]([+-]?\d+))?$`)

// maxExponent keeps big.Rat away from numbers like 1e999999999, which would take a long
// time and much memory to expand; no sane amount needs more.
const maxExponent = 30

var (
	ErrNotNumber  = errors.New("must be a number")
	ErrTooPrecise = errors.New("must have at most 6 decimal places")
	ErrOutOfRange = errors.New("is out of range")
	micros        = big.NewRat(PerUnit, 1)
	maxInt64Rat   = new(big.Rat).SetInt64(1<<63 - 1)
	minInt64Rat   = new(big.Rat).SetInt64(-1 << 63)
)

// Parse converts the exact text of a decimal number in JSON number syntax ("12.5", "1e2",
// PostgreSQL NUMERIC text such as "1.500000") to micros. Anything else, a quoted string
// included, is ErrNotNumber.
func Parse(s string) (int64, error) {
	m := jsonNumber.FindStringSubmatch(s)
	if m == nil {
		return 0, ErrNotNumber
	}
	if m[1] != "" {
		exp, err := strconv.Atoi(m[1])
		if err != nil || exp > maxExponent || exp < -maxExponent {
			return 0, ErrOutOfRange
		}
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, ErrNotNumber
	}
	r.Mul(r, micros)
	if !r.IsInt() {
		return 0, ErrTooPrecise
	}
	if r.Cmp(maxInt64Rat) > 0 || r.Cmp(minInt64Rat) < 0 {
		return 0, ErrOutOfRange
	}
	return r.Num().Int64(), nil
}

// Format renders micros as the shortest exact decimal: 12500000 → 12.5, 0 → 0.
func Format(v int64) json.Number {
	neg := v < 0
	u := uint64(v)
	if neg {
		u = -u // two's complement: correct for math.MinInt64 too
	}
	whole := strconv.FormatUint(u/PerUnit, 10)
	frac := strings.TrimRight(leftPad(strconv.FormatUint(u%PerUnit, 10), 6), "0")
	out := whole
	if frac != "" {
		out += "." + frac
	}
	if neg {
		out = "-" + out
	}
	return json.Number(out)
}

func leftPad(s string, n int) string {
	if len(s) >= n {
		return s
	}
	return strings.Repeat("0", n-len(s)) + s
}
