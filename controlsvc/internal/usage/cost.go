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

// Breakdown is a charge in micro-dollars, bucket by bucket. Total is the sum of the
// buckets, each rounded on its own, so a record's total always equals the sum of the bucket
// costs it shows.
type Breakdown struct {
	Input      int64
	Output     int64
	CacheRead  int64
	CacheWrite int64
	Total      int64
}

// CostBreakdown prices each bucket: tokens × price per million tokens × rate (fixed point,
// RateUnit = 1.0), rounded half up to a micro-dollar. The arithmetic is exact (big
// integers): no float ever touches money. Negative inputs count as zero; a result beyond
// int64 saturates.
//
// The long-context tier applies when the prompt exceeds it (Price.For), and the 1-hour part
// of the cache writes is priced at CacheWrite1h.
func CostBreakdown(t Tokens, p Price, rate int64) Breakdown {
	p = p.For(t)
	write1h := min(nonNegative(t.CacheCreation1h), nonNegative(t.CacheCreation))
	price1h := p.CacheWrite1h
	if price1h == 0 {
		price1h = p.CacheWrite
	}
	b := Breakdown{
		Input:     bucketCost(t.Input, p.Input, rate),
		Output:    bucketCost(t.Output, p.Output, rate),
		CacheRead: bucketCost(t.CacheRead, p.CacheRead, rate),
		CacheWrite: saturatingSum(bucketCost(t.CacheCreation-write1h, p.CacheWrite, rate),
			bucketCost(write1h, price1h, rate)),
	}
	b.Total = saturatingSum(b.Input, b.Output, b.CacheRead, b.CacheWrite)
	return b
}

// Cost is CostBreakdown's total.
func Cost(t Tokens, p Price, rate int64) int64 { return CostBreakdown(t, p, rate).Total }

func bucketCost(tokens, price, rate int64) int64 {
	v := new(big.Int).Mul(big.NewInt(nonNegative(tokens)), big.NewInt(nonNegative(price)))
	v.Mul(v, big.NewInt(nonNegative(rate)))
	v.Add(v, halfDivisor)
	v.Quo(v, costDivisor)
	if !v.IsInt64() {
		// Beyond 9.2e12 USD: not a real request; saturate rather than wrap.
		return maxInt64
	}
	return v.Int64()
}

const maxInt64 = int64(^uint64(0) >> 1)

func saturatingSum(vs ...int64) int64 {
	var sum int64
	for _, v := range vs {
		if sum > maxInt64-v {
			return maxInt64
		}
		sum += v
	}
	return sum
}
