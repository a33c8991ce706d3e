package yaegi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/poolgate/poolgate/fakeupstream"
)

// adminClient calls the controlsvc admin API over HTTP.
type adminClient struct {
	base  string
	token string
}

// do sends in as JSON (nil: no body), checks the status and decodes the answer into out.
func (a adminClient) do(t *testing.T, method, path string, in any, wantStatus int, out any) {
	t.Helper()
	if err := a.call(method, path, in, wantStatus, out); err != nil {
		t.Fatal(err)
	}
}

func (a adminClient) call(method, path string, in any, wantStatus int, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("admin %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		return fmt.Errorf("admin %s %s: status %d, want %d; body %s", method, path, resp.StatusCode, wantStatus, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("admin %s %s: decoding %s: %w", method, path, raw, err)
		}
	}
	return nil
}

type idOnly struct {
	ID int64 `json:"id"`
}

// accountSpec describes one upstream account of a tenant.
type accountSpec struct {
	name     string
	priority int
	mapping  map[string]string
	script   *fakeupstream.Script // programmed on the fake for this account's credential
}

// tenant is what seed created: a user, an OpenAI group, its accounts and an API key.
type tenant struct {
	userID   int64
	groupID  int64
	keyID    int64
	key      string
	accounts []seededAccount
}

type seededAccount struct {
	id   int64
	cred string // the upstream API key the fake sees
}

var seedCounter atomic.Int64

// seed creates an isolated tenant through the admin API, with accounts whose base URL is
// the fake upstream. Credentials are unique, so fake scripts and logs are per tenant.
func (s *stack) seed(t *testing.T, specs ...accountSpec) tenant {
	t.Helper()
	return s.seedOn(t, "openai", specs...)
}

// seedOn is seed with a group and accounts of the given platform ("openai", "anthropic").
func (s *stack) seedOn(t *testing.T, platform string, specs ...accountSpec) tenant {
	t.Helper()
	tn, err := s.seedTenantOn(strings.ReplaceAll(t.Name(), "/", "-"), platform, specs...)
	if err != nil {
		t.Fatalf("seeding: %v", err)
	}
	return tn
}

func (s *stack) seedTenant(name string, specs ...accountSpec) (tenant, error) {
	return s.seedTenantOn(name, "openai", specs...)
}

func (s *stack) seedTenantOn(name, platform string, specs ...accountSpec) (tenant, error) {
	tag := fmt.Sprintf("%s-%d", name, seedCounter.Add(1))
	var tn tenant
	var u, g, k struct {
		ID  int64  `json:"id"`
		Key string `json:"key"`
	}
	if err := s.admin.call(http.MethodPost, "/users", map[string]any{"name": "user-" + tag, "concurrency": 10, "balance_usd": 100}, http.StatusCreated, &u); err != nil {
		return tn, err
	}
	if err := s.admin.call(http.MethodPost, "/groups", map[string]any{"name": "group-" + tag, "platform": platform, "rate_multiplier": 1}, http.StatusCreated, &g); err != nil {
		return tn, err
	}
	tn.userID, tn.groupID = u.ID, g.ID
	for _, sp := range specs {
		cred := "sk-upstream-" + tag + "-" + sp.name
		in := map[string]any{
			"name": "acct-" + tag + "-" + sp.name, "platform": platform, "base_url": s.fakeServer.URL,
			"credential": map[string]string{"api_key": cred}, "concurrency": 10, "priority": sp.priority,
			"group_ids": []int64{g.ID},
		}
		if sp.mapping != nil {
			in["model_mapping"] = sp.mapping
		}
		var a idOnly
		if err := s.admin.call(http.MethodPost, "/accounts", in, http.StatusCreated, &a); err != nil {
			return tn, err
		}
		if sp.script != nil {
			s.fake.SetCredentialScript(cred, *sp.script)
		}
		tn.accounts = append(tn.accounts, seededAccount{id: a.ID, cred: cred})
	}
	if err := s.admin.call(http.MethodPost, "/api-keys", map[string]any{"user_id": u.ID, "group_id": g.ID, "name": "key-" + tag}, http.StatusCreated, &k); err != nil {
		return tn, err
	}
	if k.Key == "" {
		return tn, fmt.Errorf("POST /api-keys returned no key")
	}
	tn.keyID, tn.key = k.ID, k.Key
	return tn, nil
}

// upstreamRequests returns what the fake received with cred, oldest first.
func (s *stack) upstreamRequests(cred string) []fakeupstream.RecordedRequest {
	var out []fakeupstream.RecordedRequest
	for _, r := range s.fake.Requests() {
		if r.Headers.Get("Authorization") == "Bearer "+cred || r.Headers.Get("X-Api-Key") == cred {
			out = append(out, r)
		}
	}
	return out
}

type usageRow struct {
	RequestID           string `json:"request_id"`
	Path                string `json:"path"`
	Model               string `json:"model"`
	UpstreamModel       string `json:"upstream_model"`
	Stream              bool   `json:"stream"`
	AccountID           int64  `json:"account_id"`
	APIKeyID            int64  `json:"api_key_id"`
	Status              int    `json:"status"`
	ErrorClass          string `json:"error_class"`
	InputTokens         int64  `json:"input_tokens"`
	OutputTokens        int64  `json:"output_tokens"`
	CacheReadTokens     int64  `json:"cache_read_tokens"`
	CacheCreationTokens int64  `json:"cache_creation_tokens"`
	DurationMs          int64  `json:"duration_ms"`
	FirstTokenMs        int64  `json:"first_token_ms"`
	Attempts            int    `json:"attempts"`
	// Warnings are what a converted request could not carry over (docs/design.md,
	// "Conversion rules for agents").
	Warnings []string `json:"warnings"`
}

// waitUsage polls GET /usage for the key until it has n rows (reports are asynchronous).
func (s *stack) waitUsage(t *testing.T, keyID int64, n int) []usageRow {
	t.Helper()
	rows, err := s.usageRows(keyID, n, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func (s *stack) usageRows(keyID int64, n int, timeout time.Duration) ([]usageRow, error) {
	deadline := time.Now().Add(timeout)
	for {
		var out struct {
			Items []usageRow `json:"items"`
		}
		if err := s.admin.call(http.MethodGet, "/usage?api_key_id="+itoa(keyID), nil, http.StatusOK, &out); err != nil {
			return nil, err
		}
		if len(out.Items) >= n {
			return out.Items, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("usage for key %d: %d rows after %s, want %d", keyID, len(out.Items), timeout, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitIdle polls GET /concurrency until the tenant's user and accounts hold no slot: a
// slot left behind is a leak.
func (s *stack) waitIdle(t *testing.T, tn tenant) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var c struct {
			Users []struct {
				UserID int64 `json:"user_id"`
				Active int64 `json:"active"`
			} `json:"users"`
			Accounts []struct {
				AccountID int64 `json:"account_id"`
				Active    int64 `json:"active"`
			} `json:"accounts"`
		}
		s.admin.do(t, http.MethodGet, "/concurrency", nil, http.StatusOK, &c)
		busy := []string{}
		for _, u := range c.Users {
			if u.UserID == tn.userID && u.Active != 0 {
				busy = append(busy, fmt.Sprintf("user %d: %d", u.UserID, u.Active))
			}
		}
		for _, a := range c.Accounts {
			for _, mine := range tn.accounts {
				if a.AccountID == mine.id && a.Active != 0 {
					busy = append(busy, fmt.Sprintf("account %d: %d", a.AccountID, a.Active))
				}
			}
		}
		if len(busy) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slots still held 10s after the requests ended: %v", busy)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// accountState reads the health fields of an account.
func (s *stack) accountState(t *testing.T, id int64) (rateLimitedUntil *time.Time) {
	t.Helper()
	var a struct {
		State struct {
			RateLimitedUntil *time.Time `json:"rate_limited_until"`
		} `json:"state"`
	}
	s.admin.do(t, http.MethodGet, "/accounts/"+itoa(id), nil, http.StatusOK, &a)
	return a.State.RateLimitedUntil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
