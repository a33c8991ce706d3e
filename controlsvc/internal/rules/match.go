// Package rules owns the error passthrough rules (docs/design.md,
// "POST /internal/v1/upstream-error"): which upstream errors they
// match, what the client gets instead, and the in-process cache every controlsvc instance
// keeps in step through Redis.
//
// Matching, precisely:
//   - Only enabled rules take part, in ascending priority, ties by id; the first match wins.
//   - A rule with platforms applies only to those platforms; no platforms means every one.
//   - The code condition holds when error_codes lists the upstream status. The keyword
//     condition holds when at least one keyword is a case-insensitive substring of the first
//     8 KiB (MaxBody) of the upstream body.
//   - match_mode "any": the code condition OR the keyword condition holds (a condition
//     that is not configured never holds).
//   - match_mode "all": every configured condition holds — the code is listed when
//     error_codes is not empty, AND some keyword is present when keywords is not empty.
//     "All" is across the kinds of condition, not across keywords: several keywords stay
//     alternatives, as in sub2api.
package rules

import (
	"encoding/json"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// MaxBody is how much of the upstream body keywords are matched against and messages are
// extracted from.
const MaxBody = 8 << 10

// maxMessage bounds an upstream message passed on to the client, in runes.
const maxMessage = 1000

// Match modes.
const (
	ModeAny = "any"
	ModeAll = "all"
)

// ErrorType is the type of every error a rule writes.
const ErrorType = "upstream_error"

// Input is one upstream error to match.
type Input struct {
	Platform string // openai | anthropic: the platform of the group the request ran in
	Status   int    // the upstream's HTTP status
	Body     []byte // the start of the upstream's body; only MaxBody bytes are looked at
}

// Result is what a matching rule makes of an upstream error.
type Result struct {
	RuleID         int64
	Status         int    // the status the client gets
	Message        string // the message of the client's error body
	SkipMonitoring bool
}

// rule is a stored rule prepared for matching.
type rule struct {
	id             int64
	codes          map[int]bool
	keywords       []string // lower-cased
	all            bool
	platforms      map[string]bool // nil = every platform
	passCode       bool
	responseCode   int
	passBody       bool
	customMessage  string
	skipMonitoring bool
}

// Set is an immutable, ordered set of enabled rules.
type Set struct {
	rules []rule
}

// NewSet prepares the enabled rules of stored for matching, in evaluation order.
func NewSet(stored []store.PassthroughRule) *Set {
	sorted := append([]store.PassthroughRule(nil), stored...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].Priority != sorted[j].Priority {
			return sorted[i].Priority < sorted[j].Priority
		}
		return sorted[i].ID < sorted[j].ID
	})
	s := &Set{}
	for _, r := range sorted {
		if !r.Enabled {
			continue
		}
		c := rule{
			id:             r.ID,
			all:            r.MatchMode == ModeAll,
			passCode:       r.PassthroughCode,
			passBody:       r.PassthroughBody,
			skipMonitoring: r.SkipMonitoring,
		}
		if len(r.ErrorCodes) > 0 {
			c.codes = make(map[int]bool, len(r.ErrorCodes))
			for _, code := range r.ErrorCodes {
				c.codes[code] = true
			}
		}
		for _, k := range r.Keywords {
			if k = strings.ToLower(k); k != "" {
				c.keywords = append(c.keywords, k)
			}
		}
		if len(r.Platforms) > 0 {
			c.platforms = make(map[string]bool, len(r.Platforms))
			for _, p := range r.Platforms {
				c.platforms[p] = true
			}
		}
		if r.ResponseCode != nil {
			c.responseCode = *r.ResponseCode
		}
		if r.CustomMessage != nil {
			c.customMessage = *r.CustomMessage
		}
		if !c.passCode && c.responseCode == 0 || !c.passBody && c.customMessage == "" ||
			len(c.codes) == 0 && len(c.keywords) == 0 {
			continue // refused by validation and the schema; never match on a half rule
		}
		s.rules = append(s.rules, c)
	}
	return s
}

// Len is the number of enabled rules.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.rules)
}

// Match returns the result of the first rule that matches in, or false.
func (s *Set) Match(in Input) (Result, bool) {
	if s.Len() == 0 {
		return Result{}, false
	}
	body := in.Body
	if len(body) > MaxBody {
		body = body[:MaxBody]
	}
	lower := "" // lower-cased body, computed once and only if some rule has keywords
	lowered := false
	for i := range s.rules {
		r := &s.rules[i]
		if r.platforms != nil && !r.platforms[in.Platform] {
			continue
		}
		codeOK := r.codes[in.Status]
		keywordOK := false
		if len(r.keywords) > 0 {
			if !lowered {
				lower, lowered = strings.ToLower(string(body)), true
			}
			for _, k := range r.keywords {
				if strings.Contains(lower, k) {
					keywordOK = true
					break
				}
			}
		}
		var ok bool
		if r.all {
			ok = (len(r.codes) == 0 || codeOK) && (len(r.keywords) == 0 || keywordOK)
		} else {
			ok = codeOK || keywordOK
		}
		if ok {
			return r.result(in.Status, body), true
		}
	}
	return Result{}, false
}

func (r *rule) result(status int, body []byte) Result {
	out := Result{RuleID: r.id, Status: status, Message: r.customMessage, SkipMonitoring: r.skipMonitoring}
	if !r.passCode {
		out.Status = r.responseCode
	}
	if r.passBody {
		out.Message = UpstreamMessage(body)
	}
	return out
}

// UpstreamMessage extracts the error message of an upstream body: error.message of OpenAI
// and Anthropic error bodies, a top-level string "error" or "message", else the body text
// itself, trimmed and bounded. Upstream bodies are the upstream's own words: they carry no
// credential of ours.
func UpstreamMessage(body []byte) string {
	if len(body) > MaxBody {
		body = body[:MaxBody]
	}
	var v struct {
		Error   json.RawMessage `json:"error"`
		Message json.RawMessage `json:"message"`
	}
	if json.Unmarshal(body, &v) == nil {
		var detail struct {
			Message string `json:"message"`
		}
		var s string
		switch {
		case json.Unmarshal(v.Error, &detail) == nil && strings.TrimSpace(detail.Message) != "":
			return bound(detail.Message)
		case json.Unmarshal(v.Error, &s) == nil && strings.TrimSpace(s) != "":
			return bound(s)
		case json.Unmarshal(v.Message, &s) == nil && strings.TrimSpace(s) != "":
			return bound(s)
		}
	}
	if msg := bound(strings.ToValidUTF8(string(body), "")); msg != "" {
		return msg
	}
	return "Upstream request failed"
}

// bound trims s and cuts it to maxMessage runes.
func bound(s string) string {
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) <= maxMessage {
		return s
	}
	n := 0
	for i := range s {
		if n == maxMessage {
			return strings.TrimSpace(s[:i]) + "…"
		}
		n++
	}
	return s
}

// anthropicPath is the one client path answered in Anthropic's error envelope.
const anthropicPath = "/v1/messages"

type errorDetail struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// ClientBody renders the client's error body for path: {"error":{…}} for the OpenAI-style
// endpoints, {"type":"error","error":{…}} on /v1/messages.
func (r Result) ClientBody(path string) any {
	d := errorDetail{Type: ErrorType, Message: r.Message}
	if path == anthropicPath {
		return struct {
			Type  string      `json:"type"`
			Error errorDetail `json:"error"`
		}{Type: "error", Error: d}
	}
	return struct {
		Error errorDetail `json:"error"`
	}{Error: d}
}
