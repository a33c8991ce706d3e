// Package routing holds a request's routing explanation (docs/design.md, "Routing
// explanations"): for each admission of the request, the accounts considered and why each
// was skipped or chosen. Admission builds one Entry in memory and appends it to a
// per-request Redis list with one pipelined round trip (log.go); settlement moves the list
// into the usage record (usage_records.routing) and deletes the key; the admin API reads
// the record, or Redis for a request not settled yet.
package routing

import (
	"encoding/json"
	"time"
)

// Why an account was skipped or chosen at one admission (Candidate.Reason).
const (
	Excluded      = "excluded"       // tried already by this request (the plugin's exclude list, the failed attempt)
	NotMapped     = "not_mapped"     // its model mapping does not serve the model
	NoConcurrency = "no_concurrency" // concurrency 0
	RateLimited   = "rate_limited"   // rate_limited_until in the future
	Overloaded    = "overloaded"     // overloaded_until in the future
	Paused        = "paused"         // paused_until in the future; PauseReason says why
	ModelBlocked  = "model_blocked"  // its upstream model is blocked (an upstream "model not found")
	BreakerOpen   = "breaker_open"   // the (account, model) circuit breaker is open
	Busy          = "busy"           // at full load (active + waiting ≥ concurrency), or its slot was taken first
	Eligible      = "eligible"       // usable, but another account came first in the scheduler's order
	Sticky        = "sticky"         // chosen as the session's account
	Chosen        = "chosen"         // chosen by load and priority
)

// Kinds of admission (Entry.Kind).
const (
	KindFirst       = "first"       // the request's first admission
	KindFailover    = "failover"    // a re-admission after a failed attempt
	KindReadmission = "readmission" // a re-admission without a failed attempt
	KindHedge       = "hedge"       // a hedged second attempt (docs/design.md, "Hedged first token")
)

// Bounds of what a request can make us store: entries per request and candidates per
// entry. A group has at most a few hundred accounts; the cut ones are counted.
const (
	MaxEntries    = 16
	MaxCandidates = 32
	// TTL bounds how long the list of a request that is never settled stays in Redis.
	TTL = time.Hour
)

// Candidate is one account of the group as one admission saw it.
type Candidate struct {
	AccountID   int64  `json:"account_id"`
	Reason      string `json:"reason"`
	PauseReason string `json:"pause_reason,omitempty"` // with Paused
}

// Failed is the failed attempt an admission settled.
type Failed struct {
	AccountID  int64  `json:"account_id"`
	Status     int    `json:"status"`
	ErrorClass string `json:"error_class"`
	// BreakerOpened: this failure opened the (account, model) circuit breaker.
	BreakerOpened bool `json:"breaker_opened"`
}

// Entry is one admission of a request.
type Entry struct {
	At    time.Time `json:"at"`
	Kind  string    `json:"kind"`
	Model string    `json:"model"` // the model the accounts were asked to serve (after the group's mapping)
	// StickyAccountID is the account the session was bound to, 0 when none.
	StickyAccountID int64       `json:"sticky_account_id,omitempty"`
	Failed          *Failed     `json:"failed,omitempty"`
	AccountID       int64       `json:"account_id"`        // the account granted, 0 when refused
	Refusal         string      `json:"refusal,omitempty"` // the refusal's reason when refused
	Candidates      []Candidate `json:"candidates"`
	CandidatesCut   int         `json:"candidates_cut"` // candidates left out beyond MaxCandidates
}

// Bound cuts the candidates to MaxCandidates, keeping the granted account, and counts the
// rest in CandidatesCut.
func (e *Entry) Bound() {
	if len(e.Candidates) <= MaxCandidates {
		return
	}
	kept := e.Candidates[:MaxCandidates:MaxCandidates]
	if e.AccountID != 0 {
		in := false
		for _, c := range kept {
			in = in || c.AccountID == e.AccountID
		}
		if !in {
			for _, c := range e.Candidates[MaxCandidates:] {
				if c.AccountID == e.AccountID {
					kept[MaxCandidates-1] = c
					break
				}
			}
		}
	}
	e.CandidatesCut += len(e.Candidates) - MaxCandidates
	e.Candidates = kept
}

// Decode reads a stored explanation: a JSON array of entries (usage_records.routing), or
// nil for none.
func Decode(raw []byte) ([]Entry, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var out []Entry
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// AttemptFlags is what Match reads of a report's attempt.
type AttemptFlags struct {
	AccountID          int64
	RetriedSameAccount bool
	HedgeLost          bool
}

// Match pairs a request's attempts with its admissions: at[i] is the index of the entry that
// granted attempt i's account (-1 when none is known), and opened[i] says whether attempt
// i's failure opened its breaker, as the admission that settled it recorded. An attempt
// after a same-account retry shares the previous attempt's admission (the plugin retries
// without asking again); otherwise attempts take the granted entries in order.
func Match(attempts []AttemptFlags, entries []Entry) (at []int, opened []bool) {
	at = make([]int, len(attempts))
	opened = make([]bool, len(attempts))
	next := 0
	for i, a := range attempts {
		at[i] = -1
		if i > 0 && attempts[i-1].RetriedSameAccount && attempts[i-1].AccountID == a.AccountID {
			at[i] = at[i-1]
			continue
		}
		for j := next; j < len(entries); j++ {
			if entries[j].AccountID != 0 && entries[j].AccountID == a.AccountID {
				at[i], next = j, j+1
				break
			}
		}
	}
	// A failed attempt is settled by a later admission naming its account; an attempt
	// retried on the same account was not (the retry went on without admission), nor one
	// cancelled because its hedge won (the report releases it).
	used := make([]bool, len(attempts))
	for _, e := range entries {
		if e.Failed == nil {
			continue
		}
		for i, a := range attempts {
			if !used[i] && !a.RetriedSameAccount && !a.HedgeLost && a.AccountID == e.Failed.AccountID {
				used[i], opened[i] = true, e.Failed.BreakerOpened
				break
			}
		}
	}
	return at, opened
}
