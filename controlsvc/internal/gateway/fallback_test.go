package gateway

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"
	"github.com/poolgate/poolgate/controlsvc/internal/gateway/health"
)

func TestModelFallbackAdmission(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	type lists = map[string][]string
	t.Run("context length: the same account serves the larger model, the reservation grows", func(t *testing.T) {
		f := e.seedFixture(t, 10, "openai")
		only := e.seedAccount(t, f.group, accountSeed{})
		e.setFallbacks(t, f.group, map[string]lists{"gpt-4o-mini": {"context_length_exceeded": {"gpt-4o"}}})
		g := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o-mini", InputBytes: 4000, MaxOutputTokens: 1000})
		if !g.ContextFallback || g.ServedModel != "" {
			t.Fatalf("first grant: context_fallback %v served_model %q, want true and none", g.ContextFallback, g.ServedModel)
		}
		before := e.reserved(t, g)
		next := e.mustGrant(t, admission.Request{RequestID: g.RequestID, GrantID: g.GrantID, APIKey: f.key, Model: "gpt-4o-mini",
			InputBytes: 4000, MaxOutputTokens: 1000,
			Failed: &health.Failure{AccountID: only, Status: 400, ErrorClass: "context_length_exceeded"}})
		defer e.release(t, next)
		if next.AccountID != only || next.ServedModel != "gpt-4o" || next.UpstreamModel != "gpt-4o" || next.ContextFallback {
			t.Fatalf("fallback grant: account %d served %q upstream %q context_fallback %v, want %d gpt-4o gpt-4o false",
				next.AccountID, next.ServedModel, next.UpstreamModel, next.ContextFallback, only)
		}
		// gpt-4o at 2.50/10.00 per million: 2000 input + 1000 output tokens = 15000 micros.
		if after := e.reserved(t, next); after != 15000 || after <= before {
			t.Fatalf("reservation %d → %d micros, want 15000 (the served model's estimate)", before, after)
		}
		if n := e.heldOf(t, f.user).Balance; n != 15000 {
			t.Fatalf("user holds %d reserved micros, want 15000", n)
		}
	})
	t.Run("context length: a balance that cannot cover the larger model refuses it", func(t *testing.T) {
		// 0.003 USD: covers gpt-4o-mini's 900 micros, not the 4100 more gpt-4o's input needs
		// (a reservation is extended up to what is available, refused below the input estimate).
		u := e.seedUser(t, 10, 3_000)
		group := e.seedGroup(t, "openai", "1")
		only := e.seedAccount(t, group, accountSeed{})
		key := e.seedKey(t, u, group)
		e.setFallbacks(t, group, map[string]lists{"gpt-4o-mini": {"context_length_exceeded": {"gpt-4o"}}})
		g := e.mustGrant(t, admission.Request{APIKey: key, Model: "gpt-4o-mini", InputBytes: 4000, MaxOutputTokens: 1000})
		if held := e.reserved(t, g); held != 900 {
			t.Fatalf("first reservation %d micros, want 900", held)
		}
		res := e.admit(t, admission.Request{RequestID: g.RequestID, GrantID: g.GrantID, APIKey: key, Model: "gpt-4o-mini",
			InputBytes: 4000, MaxOutputTokens: 1000,
			Failed: &health.Failure{AccountID: only, Status: 400, ErrorClass: "context_length_exceeded"}})
		const msg = "Insufficient balance: $0.00 available; this request may cost up to $0.02 (max_tokens 1000 on gpt-4o)"
		if res.status != 403 || res.reject != admission.ReasonBilling || !strings.Contains(string(res.body), msg) {
			t.Fatalf("admit = %d %q %s, want 403 billing %s", res.status, res.reject, res.body, msg)
		}
		if held := e.reserved(t, g); held != 900 {
			t.Fatalf("reservation after the refusal %d micros, want 900 unchanged", held)
		}
		if n := e.count(t, "account", only); n != 0 {
			t.Fatalf("account holds %d slots after the refused fallback, want 0", n)
		}
	})
	t.Run("no account serves the model: model_not_found list", func(t *testing.T) {
		f := e.seedFixture(t, 10, "openai")
		big := e.seedAccount(t, f.group, accountSeed{mapping: `{"gpt-4o":""}`})
		e.setFallbacks(t, f.group, map[string]lists{"*": {"model_not_found": {"nope", "gpt-4o"}}})
		g := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-unknown"})
		e.release(t, g)
		if g.AccountID != big || g.ServedModel != "gpt-4o" || g.UpstreamModel != "gpt-4o" {
			t.Fatalf("grant: account %d served %q upstream %q, want %d gpt-4o gpt-4o", g.AccountID, g.ServedModel, g.UpstreamModel, big)
		}
	})
	t.Run("failover exhausted: exhausted list", func(t *testing.T) {
		f := e.seedFixture(t, 10, "openai")
		mini := e.seedAccount(t, f.group, accountSeed{mapping: `{"gpt-4o-mini":""}`})
		big := e.seedAccount(t, f.group, accountSeed{mapping: `{"gpt-4o":""}`})
		e.setFallbacks(t, f.group, map[string]lists{"gpt-4o-mini": {"exhausted": {"gpt-4o"}}})
		g := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o-mini"})
		if g.AccountID != mini || g.ServedModel != "" {
			t.Fatalf("first grant: account %d served %q, want %d as requested", g.AccountID, g.ServedModel, mini)
		}
		next := e.failOver(t, f.key, "gpt-4o-mini", g, health.Failure{Status: 500, ErrorClass: "upstream_status"})
		e.release(t, next)
		if next.AccountID != big || next.ServedModel != "gpt-4o" {
			t.Fatalf("after the only account failed: account %d served %q, want %d gpt-4o", next.AccountID, next.ServedModel, big)
		}
	})
	t.Run("upstream model not found on the last account: model_not_found list", func(t *testing.T) {
		f := e.seedFixture(t, 10, "openai")
		mini := e.seedAccount(t, f.group, accountSeed{mapping: `{"gpt-4o-mini":""}`})
		big := e.seedAccount(t, f.group, accountSeed{mapping: `{"gpt-4o":""}`})
		e.setFallbacks(t, f.group, map[string]lists{"gpt-4o-mini": {"model_not_found": {"gpt-4o"}}})
		g := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o-mini"})
		next := e.failOver(t, f.key, "gpt-4o-mini", g, health.Failure{Status: 404, ErrorClass: health.ErrorClassModelNotFound})
		e.release(t, next)
		if g.AccountID != mini || next.AccountID != big || next.ServedModel != "gpt-4o" {
			t.Fatalf("accounts %d → %d served %q, want %d → %d gpt-4o", g.AccountID, next.AccountID, next.ServedModel, mini, big)
		}
	})
	t.Run("no fallback configured: refused as before", func(t *testing.T) {
		f := e.seedFixture(t, 10, "openai")
		e.seedAccount(t, f.group, accountSeed{mapping: `{"gpt-4o":""}`})
		res := e.admit(t, admission.Request{APIKey: f.key, Model: "gpt-unknown"})
		if res.status != 404 {
			t.Fatalf("admit = %d %s, want the model_not_found refusal", res.status, res.body)
		}
	})
}

// The record of a request a fallback served is priced by the served model and shows both.
func TestReportOfFallbackIsPricedByTheServedModel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedFixture(t, 10, "openai")
	only := e.seedAccount(t, f.group, accountSeed{})
	e.setFallbacks(t, f.group, map[string]map[string][]string{"gpt-4o-mini": {"context_length_exceeded": {"gpt-4o"}}})
	g := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o-mini"})
	next := e.mustGrant(t, admission.Request{RequestID: g.RequestID, GrantID: g.GrantID, APIKey: f.key, Model: "gpt-4o-mini",
		Failed: &health.Failure{AccountID: only, Status: 400, ErrorClass: "context_length_exceeded"}})
	rep := reportFor(next, 200, "responses", `{"input_tokens":1000,"output_tokens":100}`)
	rep.Model, rep.ServedModel = "gpt-4o-mini", next.ServedModel
	rep.Attempts = []attempt{{AccountID: only, Status: 400, ErrorClass: "context_length_exceeded", UpstreamModel: "gpt-4o-mini"},
		{AccountID: only, Status: 200}}
	wantAccepted(t, e.sendReports(t, rep), 1)
	var model, served, upstream string
	var cost int64
	if err := e.st.Pool.QueryRow(t.Context(), `SELECT model, served_model, upstream_model, cost_micros
		FROM usage_records WHERE request_id = $1`, g.RequestID).Scan(&model, &served, &upstream, &cost); err != nil {
		t.Fatal(err)
	}
	// gpt-4o: 1000 × 2.50 + 100 × 10.00 per million = 2500 + 1000 micros (gpt-4o-mini: 210).
	if model != "gpt-4o-mini" || served != "gpt-4o" || upstream != "gpt-4o" || cost != 3500 {
		t.Fatalf("record: model %q served %q upstream %q cost %d, want gpt-4o-mini gpt-4o gpt-4o 3500", model, served, upstream, cost)
	}
}

// setFallbacks configures the group's model_fallbacks (before its key is first used: the key
// cache holds the rules for 2 s).
func (e *env) setFallbacks(t *testing.T, group int64, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	e.exec(t, `UPDATE groups SET model_fallbacks = $2::jsonb WHERE id = $1`, group, string(b))
}
