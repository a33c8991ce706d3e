package gateway

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"
	"github.com/poolgate/poolgate/controlsvc/internal/slots"
)

// POST /internal/v1/count-tokens answers an account of an anthropic group that serves the
// model, or an estimate; it never takes a slot and never reserves.
func TestCountTokensChoosesAccountWithoutSlot(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	anth := e.seedFixture(t, 5, "anthropic")
	acc := e.seedAccount(t, anth.group, accountSeed{platform: "anthropic", apiKey: "sk-up-ant", mapping: `{"claude-x":"claude-x-2025"}`})
	oai := e.seedFixture(t, 5, "openai")
	e.seedAccount(t, oai.group, accountSeed{platform: "openai", apiKey: "sk-up-oai"})
	paused := e.seedFixture(t, 5, "anthropic")
	pausedAcc := e.seedAccount(t, paused.group, accountSeed{platform: "anthropic", apiKey: "sk-up-p"})
	e.exec(t, `UPDATE accounts SET paused_until = now() + interval '1 hour' WHERE id = $1`, pausedAcc)
	broke := e.seedFixture(t, 5, "anthropic")
	e.seedAccount(t, broke.group, accountSeed{platform: "anthropic", apiKey: "sk-up-b"})
	e.exec(t, `UPDATE users SET balance_micros = 0 WHERE id = $1`, broke.user)

	tests := []struct {
		name         string
		key, model   string
		wantEstimate bool
		wantModel    string
	}{
		{name: "anthropic group, mapped model", key: anth.key, model: "claude-x", wantModel: "claude-x-2025"},
		{name: "anthropic group, model no account maps", key: anth.key, model: "gpt-4o", wantEstimate: true},
		{name: "openai group", key: oai.key, model: "gpt-4o", wantEstimate: true},
		{name: "only account paused", key: paused.key, model: "claude-x", wantEstimate: true},
		{name: "no balance", key: broke.key, model: "claude-x", wantEstimate: true},
		{name: "no model", key: anth.key, model: "", wantEstimate: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.post(t, "/internal/v1/count-tokens", testSecret, admission.CountTokensRequest{APIKey: tt.key, Model: tt.model})
			if res.status != http.StatusOK {
				t.Fatalf("count-tokens = %d %s, want 200", res.status, res.body)
			}
			var rep admission.CountTokensReply
			if err := json.Unmarshal(res.body, &rep); err != nil {
				t.Fatal(err)
			}
			if tt.wantEstimate {
				if !rep.Estimate || rep.AccountID != 0 || rep.BaseURL != "" || len(rep.Headers) != 0 {
					t.Fatalf("reply %s, want {\"estimate\":true} only", res.body)
				}
				return
			}
			if rep.Estimate || rep.AccountID != acc || rep.BaseURL != "http://upstream.test" || rep.UpstreamModel != tt.wantModel ||
				rep.Headers["x-api-key"] != "sk-up-ant" || rep.Headers["anthropic-version"] != "2023-06-01" {
				t.Fatalf("reply %s, want account %d with its credential and upstream model %q", res.body, acc, tt.wantModel)
			}
		})
	}
	if u, a := e.count(t, slots.KindUser, anth.user), e.count(t, slots.KindAccount, acc); u != 0 || a != 0 {
		t.Fatalf("slots user=%d account=%d after count-tokens, want 0 and 0", u, a)
	}
	if n := e.heldOf(t, anth.user).Holds; n != 0 {
		t.Fatalf("%d holds after count-tokens, want none", n)
	}
	if n := e.queryInt(t, `SELECT count(*) FROM usage_records`); n != 0 {
		t.Fatalf("%d usage records after count-tokens, want none", n)
	}
}

func TestCountTokensRefusesBadKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct{ name, key string }{
		{"unknown key", "sk-pg-nope"},
		{"missing key", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.post(t, "/internal/v1/count-tokens", testSecret, admission.CountTokensRequest{APIKey: tt.key, Model: "claude-x"})
			wantError(t, res, http.StatusUnauthorized, admission.ReasonAuth, "anthropic", "authentication_error", "Invalid API key")
		})
	}
	t.Run("no plugin secret", func(t *testing.T) {
		res := e.post(t, "/internal/v1/count-tokens", "", admission.CountTokensRequest{APIKey: "x", Model: "claude-x"})
		if res.status != http.StatusUnauthorized {
			t.Fatalf("got %d, want 401", res.status)
		}
	})
	t.Run("garbled body", func(t *testing.T) {
		res := e.post(t, "/internal/v1/count-tokens", testSecret, "{")
		if res.status != http.StatusBadRequest || res.reject != admission.ReasonInvalid {
			t.Fatalf("got %d reject %q, want 400 invalid", res.status, res.reject)
		}
	})
}
