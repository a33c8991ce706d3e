package usage

import "math/big"

// RateUnit is the fixed-point scale of a rate multiplier: 1.0 = 1_000_000, matching the
// six decimals of groups.rate_multiplier (NUMERIC(12,6)).
const RateUnit = 1_000_000

var (
	// perMillionTokens × RateUnit: the divisor that turns tokens × price × rate into
	// micro-dollars.
	costDivisor = new(big.Int).Mul(big.NewInt(1_000_000), big.NewInt(RateUnit))
	halfDivisor = new(big.Int).Rsh(costDivisor, 1)
)

// Cost returns the charge in micro-dollars: the sum over buckets of tokens × price per
// million tokens, times rate (fixed point, RateUnit = 1.0), rounded half up. The arithmetic
// is exact (big integers): no float ever touches money. Negative inputs count as zero.
func Cost(t Tokens, p Price, rate int64) int64 {
	sum := new(big.Int)
	term := new(big.Int)
	add := func(tokens, price int64) {
		term.Mul(big.NewInt(nonNegative(tokens)), big.NewInt(nonNegative(price)))
		sum.Add(sum, term)
	}
	add(t.Input, p.Input)
	add(t.Output, p.Output)
	add(t.CacheRead, p.CacheRead)
	add(t.CacheCreation, p.CacheWrite)
	sum.Mul(sum, big.NewInt(nonNegative(rate)))
	sum.Add(sum, halfDivisor)
	sum.Quo(sum, costDivisor)
	if !sum.IsInt64() {
		// Beyond 9.2e12 USD: not a real request; saturate rather than wrap.
		return int64(^uint64(0) >> 1)
	}
	return sum.Int64()
}
