package usage

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

func TestCost(t *testing.T) {
	t.Parallel()
	gpt4o := Price{Input: 2_500_000, Output: 10_000_000, CacheRead: 1_250_000, CacheWrite: 2_500_000}
	sonnet := Price{Input: 3_000_000, Output: 15_000_000, CacheRead: 300_000, CacheWrite: 3_750_000}
	mini := Price{Input: 150_000, Output: 600_000, CacheRead: 75_000, CacheWrite: 150_000}
	tests := []struct {
		name   string
		tokens Tokens
		price  Price
		rate   int64
		want   int64
	}{
		{
			// 800×2.5 + 200×1.25 + 500×10 = 7250 micro-dollars
			name:   "every openai bucket at rate 1",
			tokens: Tokens{Input: 800, Output: 500, CacheRead: 200},
			price:  gpt4o, rate: RateUnit, want: 7250,
		},
		{
			name:   "rate multiplier 1.5",
			tokens: Tokens{Input: 800, Output: 500, CacheRead: 200},
			price:  gpt4o, rate: 1_500_000, want: 10875,
		},
		{
			// 25×3 + 420×15 + 3000×0.3 + 1500×3.75 = 75 + 6300 + 900 + 5625 = 12900
			name:   "anthropic cache write bucket",
			tokens: Tokens{Input: 25, Output: 420, CacheRead: 3000, CacheCreation: 1500},
			price:  sonnet, rate: RateUnit, want: 12900,
		},
		{name: "rounds down below half", tokens: Tokens{Input: 3}, price: mini, rate: RateUnit, want: 0},                     // 0.45
		{name: "rounds half up", tokens: Tokens{Input: 10, Output: 0}, price: Price{Input: 50_000}, rate: RateUnit, want: 1}, // 0.5
		{name: "rounds up above half", tokens: Tokens{Input: 4}, price: mini, rate: RateUnit, want: 1},                       // 0.6
		{name: "fractional rate", tokens: Tokens{Output: 1_000_000}, price: mini, rate: 333_333, want: 200_000},              // 600000 × 0.333333 = 199999.8
		{name: "rate zero is free", tokens: Tokens{Input: 1_000_000}, price: gpt4o, rate: 0, want: 0},
		{name: "no tokens", tokens: Tokens{}, price: gpt4o, rate: RateUnit, want: 0},
		{name: "negative tokens count as zero", tokens: Tokens{Input: -100, Output: 1000}, price: gpt4o, rate: RateUnit, want: 10_000},
		{
			name:   "one million tokens of each at opus prices",
			tokens: Tokens{Input: 1_000_000, Output: 1_000_000, CacheRead: 1_000_000, CacheCreation: 1_000_000},
			price:  Price{Input: 15_000_000, Output: 75_000_000, CacheRead: 1_500_000, CacheWrite: 18_750_000},
			rate:   RateUnit, want: 110_250_000,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Cost(tt.tokens, tt.price, tt.rate); got != tt.want {
				t.Errorf("Cost = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestCostIsExactBeyondInt64Intermediates checks a product that overflows int64 midway
// (tokens × price × rate ≈ 7.5e25) still comes out exact.
func TestCostIsExactBeyondInt64Intermediates(t *testing.T) {
	t.Parallel()
	tokens := Tokens{Output: 1_000_000_007}
	price := Price{Output: 75_000_000}
	rate := int64(999_999_999_999) // NUMERIC(12,6) maximum: 999999.999999
	num := new(big.Int).Mul(big.NewInt(1_000_000_007), big.NewInt(75_000_000))
	num.Mul(num, big.NewInt(rate))
	want := new(big.Rat).SetFrac(num, big.NewInt(1_000_000_000_000))
	wantF, _ := want.Float64()
	got := Cost(tokens, price, rate)
	if math.Abs(float64(got)-wantF) > 1 {
		t.Fatalf("Cost = %d, want ≈ %.0f", got, wantF)
	}
	// exact check: got must be the rounded quotient
	lo := new(big.Int).Mul(big.NewInt(got), big.NewInt(1_000_000_000_000))
	diff := new(big.Int).Sub(num, lo)
	half := big.NewInt(500_000_000_000)
	if diff.Cmp(new(big.Int).Neg(half)) < 0 || diff.Cmp(half) >= 0 {
		t.Fatalf("Cost = %d is not num/1e12 rounded half up (remainder %s)", got, diff)
	}
}

func TestCostSaturates(t *testing.T) {
	t.Parallel()
	got := Cost(Tokens{Output: math.MaxInt64}, Price{Output: math.MaxInt64}, math.MaxInt64)
	if got != math.MaxInt64 {
		t.Fatalf("Cost = %d, want saturation at MaxInt64", got)
	}
}

func TestCostBreakdownPerBucket(t *testing.T) {
	t.Parallel()
	sonnet := Price{Input: 3_000_000, Output: 15_000_000, CacheRead: 300_000, CacheWrite: 3_750_000}
	tests := []struct {
		name   string
		tokens Tokens
		rate   int64
		want   Breakdown
	}{
		{name: "input only", tokens: Tokens{Input: 1000}, rate: RateUnit, want: Breakdown{Input: 3000, Total: 3000}},
		{name: "output only", tokens: Tokens{Output: 1000}, rate: RateUnit, want: Breakdown{Output: 15000, Total: 15000}},
		{name: "cache read only", tokens: Tokens{CacheRead: 1000}, rate: RateUnit, want: Breakdown{CacheRead: 300, Total: 300}},
		{name: "cache write only", tokens: Tokens{CacheCreation: 1000}, rate: RateUnit, want: Breakdown{CacheWrite: 3750, Total: 3750}},
		{name: "group multiplier 0.8", tokens: Tokens{Input: 1000, Output: 1000}, rate: 800_000,
			want: Breakdown{Input: 2400, Output: 12000, Total: 14400}},
		{name: "user override 2.5", tokens: Tokens{Input: 1000, CacheRead: 1000}, rate: 2_500_000,
			want: Breakdown{Input: 7500, CacheRead: 750, Total: 8250}},
		{
			// each bucket rounds on its own: 1×3 = 3, 1×0.3 = 0.3 → 0, 1×3.75 = 3.75 → 4
			name: "buckets round separately", tokens: Tokens{Input: 1, CacheRead: 1, CacheCreation: 1}, rate: RateUnit,
			want: Breakdown{Input: 3, CacheWrite: 4, Total: 7},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := CostBreakdown(tt.tokens, sonnet, tt.rate); got != tt.want {
				t.Errorf("CostBreakdown = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestCostBreakdownProperties checks, over random requests, that every bucket is its exact
// rational cost rounded half up, that the total is the sum of the buckets, and that the
// total is within two micro-dollars of the exactly rounded grand total (four buckets, half a
// micro-dollar each at most).
func TestCostBreakdownProperties(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	div := new(big.Rat).SetInt64(1_000_000 * RateUnit)
	exact := func(tokens, price, rate int64) *big.Rat {
		n := new(big.Int).Mul(big.NewInt(tokens), big.NewInt(price))
		n.Mul(n, big.NewInt(rate))
		return new(big.Rat).Quo(new(big.Rat).SetInt(n), div)
	}
	roundHalfUp := func(r *big.Rat) int64 {
		f := new(big.Rat).Add(r, big.NewRat(1, 2))
		return new(big.Int).Quo(f.Num(), f.Denom()).Int64()
	}
	for i := 0; i < 20_000; i++ {
		tok := Tokens{Input: rng.Int64N(2_000_000), Output: rng.Int64N(200_000), CacheRead: rng.Int64N(2_000_000), CacheCreation: rng.Int64N(500_000)}
		p := Price{Input: rng.Int64N(20_000_000), Output: rng.Int64N(100_000_000), CacheRead: rng.Int64N(5_000_000), CacheWrite: rng.Int64N(25_000_000)}
		rate := rng.Int64N(5 * RateUnit)
		b := CostBreakdown(tok, p, rate)
		buckets := []struct {
			got           int64
			tokens, price int64
		}{{b.Input, tok.Input, p.Input}, {b.Output, tok.Output, p.Output}, {b.CacheRead, tok.CacheRead, p.CacheRead}, {b.CacheWrite, tok.CacheCreation, p.CacheWrite}}
		sum := new(big.Rat)
		for _, bk := range buckets {
			e := exact(bk.tokens, bk.price, rate)
			sum.Add(sum, e)
			if want := roundHalfUp(e); bk.got != want {
				t.Fatalf("case %d: bucket %d, want %d (%+v %+v rate %d)", i, bk.got, want, tok, p, rate)
			}
		}
		if b.Total != b.Input+b.Output+b.CacheRead+b.CacheWrite {
			t.Fatalf("case %d: total %d is not the sum of %+v", i, b.Total, b)
		}
		if d := b.Total - roundHalfUp(sum); d < -2 || d > 2 {
			t.Fatalf("case %d: total %d is %d away from the exact total", i, b.Total, d)
		}
		if Cost(tok, p, rate) != b.Total {
			t.Fatalf("case %d: Cost differs from the breakdown's total", i)
		}
	}
}
