package routing

import (
	"reflect"
	"testing"
)

func TestMatch(t *testing.T) {
	t.Parallel()
	granted := func(acc int64, failed *Failed) Entry { return Entry{AccountID: acc, Failed: failed} }
	tests := []struct {
		name       string
		attempts   []AttemptFlags
		entries    []Entry
		wantAt     []int
		wantOpened []bool
	}{
		{
			name:       "one admission per attempt",
			attempts:   []AttemptFlags{{AccountID: 1}, {AccountID: 2}},
			entries:    []Entry{granted(1, nil), granted(2, &Failed{AccountID: 1, BreakerOpened: true})},
			wantAt:     []int{0, 1},
			wantOpened: []bool{true, false},
		},
		{
			name:       "a same-account retry shares its admission, and the retried attempt settled nothing",
			attempts:   []AttemptFlags{{AccountID: 1, RetriedSameAccount: true}, {AccountID: 1}, {AccountID: 2}},
			entries:    []Entry{granted(1, nil), granted(2, &Failed{AccountID: 1, BreakerOpened: true})},
			wantAt:     []int{0, 0, 1},
			wantOpened: []bool{false, true, false},
		},
		{
			name:       "a refused re-admission grants nothing but settles the last attempt",
			attempts:   []AttemptFlags{{AccountID: 1}, {AccountID: 2}},
			entries:    []Entry{granted(1, nil), granted(2, &Failed{AccountID: 1}), {Failed: &Failed{AccountID: 2, BreakerOpened: true}}},
			wantAt:     []int{0, 1},
			wantOpened: []bool{false, true},
		},
		{
			name:       "a lost hedge settled nothing",
			attempts:   []AttemptFlags{{AccountID: 1, HedgeLost: true}, {AccountID: 2}},
			entries:    []Entry{granted(1, nil), granted(2, nil), {Failed: &Failed{AccountID: 1, BreakerOpened: true}}},
			wantAt:     []int{0, 1},
			wantOpened: []bool{false, false},
		},
		{
			name:       "no explanation",
			attempts:   []AttemptFlags{{AccountID: 1}},
			wantAt:     []int{-1},
			wantOpened: []bool{false},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at, opened := Match(tt.attempts, tt.entries)
			if !reflect.DeepEqual(at, tt.wantAt) || !reflect.DeepEqual(opened, tt.wantOpened) {
				t.Errorf("Match = %v %v, want %v %v", at, opened, tt.wantAt, tt.wantOpened)
			}
		})
	}
}

// Bound keeps MaxCandidates, the granted account among them, and counts the rest.
func TestBound(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		n       int
		granted int64
		wantCut int
	}{
		{"under the cap", MaxCandidates, 1, 0},
		{"granted beyond the cap", MaxCandidates + 10, MaxCandidates + 10, 10},
		{"refused", 300, 0, 300 - MaxCandidates},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := Entry{AccountID: tt.granted}
			for i := 1; i <= tt.n; i++ {
				e.Candidates = append(e.Candidates, Candidate{AccountID: int64(i), Reason: Busy})
			}
			e.Bound()
			if len(e.Candidates) > MaxCandidates || e.CandidatesCut != tt.wantCut {
				t.Fatalf("%d candidates, cut %d; want ≤ %d, cut %d", len(e.Candidates), e.CandidatesCut, MaxCandidates, tt.wantCut)
			}
			if tt.granted == 0 {
				return
			}
			found := false
			for _, c := range e.Candidates {
				found = found || c.AccountID == tt.granted
			}
			if !found {
				t.Errorf("the granted account %d was cut", tt.granted)
			}
		})
	}
}
