package scheduler

import (
	"math/rand/v2"
	"sort"
	"time"
)

// Candidate is an account that may serve a request, with what ordering needs.
type Candidate struct {
	ID          int64
	Priority    int       // lower is tried first
	Live        int64     // live slots (leases) held now
	Concurrency int64     // slot limit; > 0
	LastUsed    time.Time // zero = never used
}

// Order sorts candidates in the order they are tried: priority ascending, then load
// (Live/Concurrency) ascending, then least recently used (never used first), with ties
// broken at random so equal accounts share traffic. The shuffle uses r (nil = the global
// source).
func Order(cs []Candidate, r *rand.Rand) {
	shuffle := rand.Shuffle
	if r != nil {
		shuffle = r.Shuffle
	}
	shuffle(len(cs), func(i, j int) { cs[i], cs[j] = cs[j], cs[i] })
	sort.SliceStable(cs, func(i, j int) bool { return less(cs[i], cs[j]) })
}

func less(a, b Candidate) bool {
	if a.Priority != b.Priority {
		return a.Priority < b.Priority
	}
	// a.Live/a.Concurrency < b.Live/b.Concurrency without division.
	if la, lb := a.Live*b.Concurrency, b.Live*a.Concurrency; la != lb {
		return la < lb
	}
	if !a.LastUsed.Equal(b.LastUsed) {
		return a.LastUsed.Before(b.LastUsed)
	}
	return false
}
