package rules

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

func intp(v int) *int            { return &v }
func strp(v string) *string      { return &v }
func codes(c ...int) []int       { return c }
func words(w ...string) []string { return w }

// base is an enabled pass-everything-through rule; cases adjust it.
func base(id int64, adjust func(*store.PassthroughRule)) store.PassthroughRule {
	r := store.PassthroughRule{ID: id, Name: "r", Enabled: true, MatchMode: ModeAny, PassthroughCode: true, PassthroughBody: true}
	adjust(&r)
	return r
}

func TestMatchConditions(t *testing.T) {
	t.Parallel()
	quota500 := func(mode string) store.PassthroughRule {
		return base(1, func(r *store.PassthroughRule) {
			r.ErrorCodes, r.Keywords, r.MatchMode = codes(500, 502), words("Quota", "billing"), mode
		})
	}
	tests := []struct {
		name   string
		rules  []store.PassthroughRule
		give   Input
		want   bool
		wantID int64
	}{
		{"any: code only", []store.PassthroughRule{quota500(ModeAny)}, Input{"openai", 500, []byte("boom")}, true, 1},
		{"any: keyword only", []store.PassthroughRule{quota500(ModeAny)}, Input{"openai", 429, []byte(`{"error":"QUOTA gone"}`)}, true, 1},
		{"any: neither", []store.PassthroughRule{quota500(ModeAny)}, Input{"openai", 429, []byte("slow down")}, false, 0},
		{"all: both", []store.PassthroughRule{quota500(ModeAll)}, Input{"openai", 502, []byte("your quota is gone")}, true, 1},
		{"all: second keyword is an alternative", []store.PassthroughRule{quota500(ModeAll)}, Input{"openai", 500, []byte("Billing")}, true, 1},
		{"all: code without keyword", []store.PassthroughRule{quota500(ModeAll)}, Input{"openai", 500, []byte("boom")}, false, 0},
		{"all: keyword without code", []store.PassthroughRule{quota500(ModeAll)}, Input{"openai", 429, []byte("quota")}, false, 0},
		{"all: only codes configured", []store.PassthroughRule{base(2, func(r *store.PassthroughRule) {
			r.ErrorCodes, r.MatchMode = codes(400), ModeAll
		})}, Input{"openai", 400, nil}, true, 2},
		{"all: only keywords configured", []store.PassthroughRule{base(2, func(r *store.PassthroughRule) {
			r.Keywords, r.MatchMode = words("policy"), ModeAll
		})}, Input{"anthropic", 418, []byte("content POLICY violation")}, true, 2},
		{"platform listed", []store.PassthroughRule{base(3, func(r *store.PassthroughRule) {
			r.ErrorCodes, r.Platforms = codes(500), words("anthropic")
		})}, Input{"anthropic", 500, nil}, true, 3},
		{"platform not listed", []store.PassthroughRule{base(3, func(r *store.PassthroughRule) {
			r.ErrorCodes, r.Platforms = codes(500), words("anthropic")
		})}, Input{"openai", 500, nil}, false, 0},
		{"disabled rule", []store.PassthroughRule{base(4, func(r *store.PassthroughRule) {
			r.ErrorCodes, r.Enabled = codes(500), false
		})}, Input{"openai", 500, nil}, false, 0},
		{"keyword beyond 8 KiB", []store.PassthroughRule{base(5, func(r *store.PassthroughRule) { r.Keywords = words("needle") })},
			Input{"openai", 500, []byte(strings.Repeat("x", MaxBody) + "needle")}, false, 0},
		{"keyword at the end of 8 KiB", []store.PassthroughRule{base(5, func(r *store.PassthroughRule) { r.Keywords = words("needle") })},
			Input{"openai", 500, []byte(strings.Repeat("x", MaxBody-6) + "needle")}, true, 5},
		{"priority before id", []store.PassthroughRule{
			base(6, func(r *store.PassthroughRule) { r.ErrorCodes, r.Priority = codes(500), 10 }),
			base(7, func(r *store.PassthroughRule) { r.ErrorCodes, r.Priority = codes(500), 1 }),
		}, Input{"openai", 500, nil}, true, 7},
		{"ties by id", []store.PassthroughRule{
			base(9, func(r *store.PassthroughRule) { r.ErrorCodes = codes(500) }),
			base(8, func(r *store.PassthroughRule) { r.ErrorCodes = codes(500) }),
		}, Input{"openai", 500, nil}, true, 8},
		{"first that matches, not first by priority", []store.PassthroughRule{
			base(10, func(r *store.PassthroughRule) { r.ErrorCodes, r.Priority = codes(503), 1 }),
			base(11, func(r *store.PassthroughRule) { r.Keywords, r.Priority = words("boom"), 2 }),
		}, Input{"openai", 500, []byte("boom")}, true, 11},
		{"no rules", nil, Input{"openai", 500, nil}, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := NewSet(tt.rules).Match(tt.give)
			if ok != tt.want || got.RuleID != tt.wantID {
				t.Fatalf("Match() = %+v, %v; want rule %d, %v", got, ok, tt.wantID, tt.want)
			}
		})
	}
}

func TestMatchResult(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		rule        store.PassthroughRule
		give        Input
		wantStatus  int
		wantMessage string
	}{
		{"custom status and message", base(1, func(r *store.PassthroughRule) {
			r.ErrorCodes, r.PassthroughCode, r.ResponseCode = codes(500), false, intp(503)
			r.PassthroughBody, r.CustomMessage, r.SkipMonitoring = false, strp("Upstream quota exhausted"), true
		}), Input{"openai", 500, []byte(`{"error":{"message":"quota"}}`)}, 503, "Upstream quota exhausted"},
		{"upstream status and OpenAI message", base(1, func(r *store.PassthroughRule) { r.ErrorCodes = codes(400) }),
			Input{"openai", 400, []byte(`{"error":{"message":"  context too long ","type":"invalid_request_error"}}`)}, 400, "context too long"},
		{"Anthropic message", base(1, func(r *store.PassthroughRule) { r.ErrorCodes = codes(529) }),
			Input{"anthropic", 529, []byte(`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)}, 529, "Overloaded"},
		{"string error", base(1, func(r *store.PassthroughRule) { r.ErrorCodes = codes(502) }),
			Input{"openai", 502, []byte(`{"error":"bad gateway"}`)}, 502, "bad gateway"},
		{"plain text body", base(1, func(r *store.PassthroughRule) { r.ErrorCodes = codes(503) }),
			Input{"openai", 503, []byte("\n upstream connect error \n")}, 503, "upstream connect error"},
		{"truncated JSON falls back to text", base(1, func(r *store.PassthroughRule) { r.ErrorCodes = codes(500) }),
			Input{"openai", 500, []byte(`{"error":{"message":"cut`)}, 500, `{"error":{"message":"cut`},
		{"empty body", base(1, func(r *store.PassthroughRule) { r.ErrorCodes = codes(500) }),
			Input{"openai", 500, nil}, 500, "Upstream request failed"},
		{"custom status, upstream message", base(1, func(r *store.PassthroughRule) {
			r.ErrorCodes, r.PassthroughCode, r.ResponseCode = codes(403), false, intp(451)
		}), Input{"openai", 403, []byte(`{"error":{"message":"region blocked"}}`)}, 451, "region blocked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := NewSet([]store.PassthroughRule{tt.rule}).Match(tt.give)
			if !ok || got.Status != tt.wantStatus || got.Message != tt.wantMessage || got.SkipMonitoring != tt.rule.SkipMonitoring {
				t.Fatalf("Match() = %+v, %v; want status %d message %q", got, ok, tt.wantStatus, tt.wantMessage)
			}
		})
	}
}

func TestUpstreamMessageIsBounded(t *testing.T) {
	t.Parallel()
	msg := UpstreamMessage([]byte(`{"error":{"message":"` + strings.Repeat("é", 5000) + `"}}`))
	if n := len([]rune(msg)); n != maxMessage+1 || !strings.HasSuffix(msg, "…") {
		t.Fatalf("message has %d runes, want %d ending in an ellipsis", n, maxMessage+1)
	}
}

func TestClientBody(t *testing.T) {
	t.Parallel()
	r := Result{Status: 503, Message: "Upstream quota exhausted"}
	tests := []struct{ path, want string }{
		{"/v1/responses", `{"error":{"type":"upstream_error","message":"Upstream quota exhausted"}}`},
		{"/v1/chat/completions", `{"error":{"type":"upstream_error","message":"Upstream quota exhausted"}}`},
		{"/v1/messages", `{"type":"error","error":{"type":"upstream_error","message":"Upstream quota exhausted"}}`},
	}
	for _, tt := range tests {
		b, err := json.Marshal(r.ClientBody(tt.path))
		if err != nil || string(b) != tt.want {
			t.Errorf("ClientBody(%s) = %s, %v; want %s", tt.path, b, err, tt.want)
		}
	}
}
