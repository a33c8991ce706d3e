package admission

import (
	"encoding/json"
	"net/http"
	"testing"
)

// TestAdmitCarriesGroupTimeouts: the grant tells the plugin the deadlines of the key's group
// (docs/design.md, "Timeouts"); a NULL column leaves the field out, so the plugin keeps its own default.
func TestAdmitCarriesGroupTimeouts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name                string
		firstToken, idle    any // SQL values; nil = NULL
		wantFirst, wantIdle string
	}{
		{name: "defaults", wantFirst: "absent", wantIdle: "absent"},
		{name: "first token set", firstToken: 500, wantFirst: "500", wantIdle: "absent"},
		{name: "zero is sent: off", firstToken: 0, idle: 0, wantFirst: "0", wantIdle: "0"},
		{name: "both set", firstToken: 1500, idle: 90000, wantFirst: "1500", wantIdle: "90000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantGrantFields(t, e, `UPDATE groups SET first_token_timeout_ms = $2, stream_idle_timeout_ms = $3 WHERE id = $1`,
				tt.firstToken, tt.idle, map[string]string{"first_token_timeout_ms": tt.wantFirst, "stream_idle_timeout_ms": tt.wantIdle})
		})
	}
}

// TestAdmitCarriesSilentUpstreamAndHedge: the grant carries the group's
// response_header_timeout_ms (absent when NULL, 0 = off) and hedge_after_ms (absent when
// NULL or 0: no hedging) (docs/design.md, "Hedged first token").
func TestAdmitCarriesSilentUpstreamAndHedge(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name              string
		headers, hedge    any // SQL values; nil = NULL
		wantHead, wantHdg string
	}{
		{name: "defaults", wantHead: "absent", wantHdg: "absent"},
		{name: "header bound off", headers: 0, wantHead: "0", wantHdg: "absent"},
		{name: "both set", headers: 45000, hedge: 1500, wantHead: "45000", wantHdg: "1500"},
		{name: "hedge 0 is off", hedge: 0, wantHead: "absent", wantHdg: "absent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantGrantFields(t, e, `UPDATE groups SET response_header_timeout_ms = $2, hedge_after_ms = $3 WHERE id = $1`,
				tt.headers, tt.hedge, map[string]string{"response_header_timeout_ms": tt.wantHead, "hedge_after_ms": tt.wantHdg})
		})
	}
}

// wantGrantFields admits a stream on a fresh key (admission caches a key with its group for
// a while) whose group setGroup ($1 the group, $2 a, $3 b) changed, and checks the grant's
// fields: each want is the field's JSON, or "absent".
func wantGrantFields(t *testing.T, e *env, setGroup string, a, b any, want map[string]string) {
	t.Helper()
	f := e.seedFixture(t, 5, "openai")
	e.seedAccount(t, f.group, accountSeed{platform: "openai", apiKey: "sk-up"})
	e.exec(t, setGroup, f.group, a, b)
	res := e.admit(t, Request{APIKey: f.key, Model: "gpt-4o", Stream: true})
	if res.status != http.StatusOK {
		t.Fatalf("admit = %d %s", res.status, res.body)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(res.body, &fields); err != nil {
		t.Fatalf("grant %s: %v", res.body, err)
	}
	for name, w := range want {
		got, ok := fields[name]
		if w == "absent" && ok {
			t.Errorf("%s = %s in %s, want it absent", name, got, res.body)
		}
		if w != "absent" && string(got) != w {
			t.Errorf("%s = %q in %s, want %s", name, got, res.body, w)
		}
	}
}
