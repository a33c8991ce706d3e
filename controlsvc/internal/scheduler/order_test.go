package scheduler

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestOrder(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		give []Candidate
		want []int64
	}{
		{
			name: "priority first, whatever the load",
			give: []Candidate{
				{ID: 1, Priority: 50, Live: 0, Concurrency: 10},
				{ID: 2, Priority: 10, Live: 9, Concurrency: 10},
				{ID: 3, Priority: 30, Live: 0, Concurrency: 10},
			},
			want: []int64{2, 3, 1},
		},
		{
			name: "then load as a ratio of concurrency",
			give: []Candidate{
				{ID: 1, Priority: 1, Live: 1, Concurrency: 2},  // 0.5
				{ID: 2, Priority: 1, Live: 4, Concurrency: 10}, // 0.4
				{ID: 3, Priority: 1, Live: 0, Concurrency: 1},  // 0
			},
			want: []int64{3, 2, 1},
		},
		{
			name: "then least recently used, never used first",
			give: []Candidate{
				{ID: 1, Priority: 1, Concurrency: 5, LastUsed: base.Add(-time.Minute)},
				{ID: 2, Priority: 1, Concurrency: 5, LastUsed: base.Add(-time.Hour)},
				{ID: 3, Priority: 1, Concurrency: 5},
			},
			want: []int64{3, 2, 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for seed := uint64(0); seed < 20; seed++ {
				cs := slices.Clone(tt.give)
				Order(cs, rand.New(rand.NewPCG(seed, seed)))
				got := make([]int64, len(cs))
				for i, c := range cs {
					got[i] = c.ID
				}
				if !slices.Equal(got, tt.want) {
					t.Fatalf("seed %d: Order = %v, want %v", seed, got, tt.want)
				}
			}
		})
	}
}

func TestOrderBreaksTiesAtRandom(t *testing.T) {
	t.Parallel()
	firsts := map[int64]int{}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		cs := []Candidate{
			{ID: 1, Priority: 1, Concurrency: 5},
			{ID: 2, Priority: 1, Concurrency: 5},
			{ID: 3, Priority: 1, Concurrency: 5},
			{ID: 4, Priority: 0, Concurrency: 5, Live: 4}, // always first: lower priority number
		}
		Order(cs, r)
		if cs[0].ID != 4 {
			t.Fatalf("first = %d, want 4", cs[0].ID)
		}
		firsts[cs[1].ID]++
	}
	for _, id := range []int64{1, 2, 3} {
		if firsts[id] < 30 {
			t.Errorf("tied candidate %d came second %d/200 times, want a fair share", id, firsts[id])
		}
	}
}
