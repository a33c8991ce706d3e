package admission

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/poolgate/poolgate/plugin/wire"
)

// The grant carries the group's header policy and the account's fixed headers ("Forwarded headers"),
// and nothing of them when the group keeps the defaults.
func TestGrantCarriesHeaderPolicy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name      string
		platform  string
		groupSQL  string // sets the group's columns; $1 = group id
		headers   string // the account's fixed headers, JSON
		wantRaw   map[string]bool
		wantBetas *string
		wantUA    string
		want      map[string]string
	}{
		{name: "defaults add nothing", platform: "openai", headers: `{}`,
			wantRaw: map[string]bool{"forward_betas": false, "user_agent": false},
			want:    map[string]string{"Authorization": "Bearer sk-up-h"}},
		{name: "group list and user agent", platform: "anthropic",
			groupSQL:  `UPDATE groups SET forward_betas = '{claude-code-20250219,context-1m-2025-08-07}', user_agent = 'pool/1' WHERE id = $1`,
			headers:   `{"Anthropic-Dangerous-Direct-Browser-Access":"true"}`,
			wantRaw:   map[string]bool{"forward_betas": true, "user_agent": true},
			wantBetas: strp("claude-code-20250219,context-1m-2025-08-07"), wantUA: "pool/1",
			want: map[string]string{"x-api-key": "sk-up-h", "anthropic-version": "2023-06-01",
				"Anthropic-Dangerous-Direct-Browser-Access": "true"}},
		{name: "empty list forwards none", platform: "openai",
			groupSQL: `UPDATE groups SET forward_betas = '{}' WHERE id = $1`, headers: `{"Openai-Organization":"org-acct"}`,
			wantRaw:   map[string]bool{"forward_betas": true, "user_agent": false},
			wantBetas: strp(""),
			want:      map[string]string{"Authorization": "Bearer sk-up-h", "Openai-Organization": "org-acct"}},
		{name: "a stored header naming the credential never replaces it", platform: "openai",
			headers: `{"AUTHORIZATION":"Bearer stolen"}`,
			wantRaw: map[string]bool{"forward_betas": false},
			want:    map[string]string{"Authorization": "Bearer sk-up-h"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := e.seedFixture(t, 5, tt.platform)
			acc := e.seedAccount(t, f.group, accountSeed{platform: tt.platform, apiKey: "sk-up-h"})
			e.exec(t, `UPDATE accounts SET headers = $2::jsonb WHERE id = $1`, acc, tt.headers)
			if tt.groupSQL != "" {
				e.exec(t, tt.groupSQL, f.group)
			}
			model := "gpt-4o"
			if tt.platform == "anthropic" {
				model = "claude-sonnet-4"
			}
			res := e.admit(t, Request{RequestID: "req_" + t.Name(), APIKey: f.key, Model: model})
			if res.status != http.StatusOK {
				t.Fatalf("admit = %d %s", res.status, res.body)
			}
			var raw map[string]json.RawMessage
			var rep wire.Grant
			if err := json.Unmarshal(res.body, &raw); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(res.body, &rep); err != nil {
				t.Fatal(err)
			}
			for field, present := range tt.wantRaw {
				if _, ok := raw[field]; ok != present {
					t.Errorf("grant field %s present = %v, want %v: %s", field, ok, present, res.body)
				}
			}
			if (rep.ForwardBetas == nil) != (tt.wantBetas == nil) ||
				(rep.ForwardBetas != nil && *rep.ForwardBetas != *tt.wantBetas) || rep.UserAgent != tt.wantUA {
				t.Errorf("forward_betas %v user_agent %q, want %v %q", rep.ForwardBetas, rep.UserAgent, tt.wantBetas, tt.wantUA)
			}
			if len(rep.Headers) != len(tt.want) {
				t.Fatalf("headers = %v, want %v", rep.Headers, tt.want)
			}
			for k, v := range tt.want {
				if rep.Headers[k] != v {
					t.Fatalf("headers = %v, want %v", rep.Headers, tt.want)
				}
			}
		})
	}
}

func strp(s string) *string { return &s }
