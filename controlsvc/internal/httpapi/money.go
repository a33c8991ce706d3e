package httpapi

import (
	"encoding/json"
	"errors"
	"math/big"
	"regexp"
	"strconv"
	"strings"
)

// Money and rates are fixed point with six decimals: 1 USD = 1 000 000 micros. JSON numbers
// are converted from their exact text, never through float64, so 0.1 stays 100 000 micros.

const microsPerUnit = 1_000_000

// jsonNumber matches the JSON number grammar, capturing the exponent for a bounds check.
var jsonNumber = regexp.MustCompile(`^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE]([+-]?\d+))?$`)

// maxExponent keeps big.Rat away from numbers like 1e999999999, which would take a long
// time and much memory to expand; no sane amount needs more.
const maxExponent = 30

var (
	errNotNumber  = errors.New("must be a number")
	errTooPrecise = errors.New("must have at most 6 decimal places")
	errOutOfRange = errors.New("is out of range")
	micros        = big.NewRat(microsPerUnit, 1)
	maxInt64Rat   = new(big.Rat).SetInt64(1<<63 - 1)
	minInt64Rat   = new(big.Rat).SetInt64(-1 << 63)
)

// parseMicros converts the exact decimal text of a JSON number to micros. Money fields are
// decoded as json.RawMessage, so anything but a number literal (a string, a boolean) is
// refused here, with the field's name.
func parseMicros(raw []byte) (int64, error) {
	s := string(raw)
	m := jsonNumber.FindStringSubmatch(s)
	if m == nil {
		return 0, errNotNumber
	}
	if m[1] != "" {
		exp, err := strconv.Atoi(m[1])
		if err != nil || exp > maxExponent || exp < -maxExponent {
			return 0, errOutOfRange
		}
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, errNotNumber
	}
	r.Mul(r, micros)
	if !r.IsInt() {
		return 0, errTooPrecise
	}
	if r.Cmp(maxInt64Rat) > 0 || r.Cmp(minInt64Rat) < 0 {
		return 0, errOutOfRange
	}
	return r.Num().Int64(), nil
}

// formatMicros renders micros as the shortest exact decimal: 12500000 → 12.5, 0 → 0.
func formatMicros(v int64) json.Number {
	neg := v < 0
	u := uint64(v)
	if neg {
		u = -u // two's complement: correct for math.MinInt64 too
	}
	whole := strconv.FormatUint(u/microsPerUnit, 10)
	frac := strings.TrimRight(leftPad(strconv.FormatUint(u%microsPerUnit, 10), 6), "0")
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

// decimalTextToMicros reads PostgreSQL NUMERIC text such as "1.500000".
func decimalTextToMicros(s string) (int64, error) {
	return parseMicros([]byte(s))
}
