package rules

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// FuzzMatch: a keyword rule matches every upstream body whose first MaxBody bytes contain
// the keyword (any case), never one whose body lacks it (with a code the rule does not
// list); the message passed on is the custom one or the upstream's, valid UTF-8, trimmed and
// at most maxMessage characters and an ellipsis, whatever the body.
func FuzzMatch(f *testing.F) {
	f.Add("overloaded", []byte(`{"error":{"type":"overloaded_error","message":"Overloaded"}}`), 529, false)
	f.Add("quota", []byte("QUOTA exceeded \xff"), 429, true)
	f.Add("\u212a", []byte("kelvin \u212a"), 400, true)
	f.Fuzz(func(t *testing.T, keyword string, body []byte, status int, passBody bool) {
		if len(body) > 4*MaxBody || len(keyword) > 200 {
			return
		}
		k := strings.TrimSpace(keyword)
		if k == "" || !utf8.ValidString(k) {
			return // the admin API refuses blank keywords; it stores valid UTF-8 text
		}
		custom := "custom message"
		set := NewSet([]store.PassthroughRule{{
			ID: 1, Enabled: true, MatchMode: ModeAny, ErrorCodes: []int{599}, Keywords: []string{k},
			PassthroughCode: true, PassthroughBody: passBody, CustomMessage: &custom,
		}})
		head := body
		if len(head) > MaxBody {
			head = head[:MaxBody]
		}
		res, ok := set.Match(Input{Platform: "openai", Status: status, Body: body})
		switch {
		case strings.Contains(string(head), k) && !ok:
			t.Fatalf("keyword %q in the body, no match", k)
		case ok && status != 599 && !strings.Contains(strings.ToLower(string(head)), strings.ToLower(k)):
			t.Fatalf("match without the keyword %q", k)
		}
		if !ok {
			return
		}
		if res.Status != status || res.RuleID != 1 {
			t.Fatalf("result %+v", res)
		}
		if !passBody && res.Message != custom {
			t.Fatalf("message %q, want the custom one", res.Message)
		}
		checkMessage(t, res.Message)
	})
}

// FuzzUpstreamMessage: the message taken from any upstream body is valid UTF-8, not blank,
// trimmed, and at most maxMessage characters plus an ellipsis.
func FuzzUpstreamMessage(f *testing.F) {
	f.Add([]byte(`{"error":{"message":"  x  "}}`))
	f.Add([]byte(`{"error":"\ud800 lone surrogate"}`))
	f.Add([]byte("\xff\xfe plain text \xc3"))
	f.Add([]byte(`{"message":` + strings.Repeat(`"é`, 1) + strings.Repeat("é", 2000) + `"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > 4*MaxBody {
			return
		}
		checkMessage(t, UpstreamMessage(body))
	})
}

func checkMessage(t *testing.T, msg string) {
	t.Helper()
	trimmed := strings.TrimSuffix(msg, "…")
	switch {
	case !utf8.ValidString(msg):
		t.Fatalf("message %q is not valid UTF-8", msg)
	case strings.TrimSpace(msg) == "" || trimmed != strings.TrimSpace(trimmed):
		t.Fatalf("message %q is blank or not trimmed", msg)
	case utf8.RuneCountInString(trimmed) > maxMessage:
		t.Fatalf("message of %d characters", utf8.RuneCountInString(trimmed))
	}
}
