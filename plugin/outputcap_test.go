package plugin

import (
	"encoding/json"
	"testing"
)

// A grant's max_output_tokens is the output limit the reservation covers: the body sent
// upstream carries it in the path's own field, the rest of the body is unchanged, and the
// client's body is never modified.
func TestBodyForSetsTheGrantsOutputLimit(t *testing.T) {
	tests := []struct {
		path  string
		body  string
		field string
	}{
		{pathResponses, `{"model":"gpt-4o","input":"hi","stream":true}`, "max_output_tokens"},
		{pathChat, `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, "max_completion_tokens"},
		{pathMessages, `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}]}`, "max_tokens"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			x := &exchange{path: tt.path, body: []byte(tt.body)}
			x.info.model = modelOf(t, tt.body)

			if got := bodyFor(x, &grant{UpstreamModel: x.info.model}); string(got) != tt.body {
				t.Fatalf("without a limit the body must go as sent: %s", got)
			}
			got := bodyFor(x, &grant{UpstreamModel: x.info.model, MaxOutputTokens: 321})
			var m map[string]json.RawMessage
			if err := json.Unmarshal(got, &m); err != nil {
				t.Fatalf("rewritten body is not JSON: %v: %s", err, got)
			}
			if string(m[tt.field]) != "321" {
				t.Errorf("%s = %s, want 321 in %s", tt.field, m[tt.field], got)
			}
			var orig map[string]json.RawMessage
			if err := json.Unmarshal([]byte(tt.body), &orig); err != nil {
				t.Fatal(err)
			}
			for k, v := range orig {
				if string(m[k]) != string(v) {
					t.Errorf("field %s changed: %s, want %s", k, m[k], v)
				}
			}
			if len(m) != len(orig)+1 {
				t.Errorf("rewritten body has %d fields, want %d: %s", len(m), len(orig)+1, got)
			}
			if string(x.body) != tt.body {
				t.Errorf("client body modified: %s", x.body)
			}

			// A failover to an account that maps the model keeps the limit.
			mapped := bodyFor(x, &grant{UpstreamModel: "mapped-model", MaxOutputTokens: 321})
			m = nil
			if err := json.Unmarshal(mapped, &m); err != nil {
				t.Fatal(err)
			}
			if string(m["model"]) != `"mapped-model"` || string(m[tt.field]) != "321" {
				t.Errorf("mapped body lost the model or the limit: %s", mapped)
			}
			// And back to a grant without a limit: the client's bytes again.
			if again := bodyFor(x, &grant{UpstreamModel: x.info.model}); string(again) != tt.body {
				t.Errorf("a grant without a limit got a rewritten body: %s", again)
			}
		})
	}
}

func modelOf(t *testing.T, body string) string {
	t.Helper()
	var v struct {
		Model string `json:"model"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	return v.Model
}
