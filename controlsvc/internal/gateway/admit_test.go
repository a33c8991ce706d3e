package gateway

import (
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"
	"github.com/poolgate/poolgate/controlsvc/internal/slots"
)

func TestAdmitGrants(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name        string
		platform    string
		mapping     string
		model       string
		wantHeaders map[string]string
		wantModel   string
	}{
		{
			name: "openai bearer", platform: "openai", model: "gpt-4o",
			wantHeaders: map[string]string{"Authorization": "Bearer sk-up-secret"},
		},
		{
			name: "anthropic key and version", platform: "anthropic", model: "claude-sonnet-4",
			wantHeaders: map[string]string{"x-api-key": "sk-up-secret", "anthropic-version": "2023-06-01"},
		},
		{
			name: "exact mapping rewrites", platform: "openai", mapping: `{"gpt-4o":"gpt-4o-2024-08-06"}`, model: "gpt-4o",
			wantHeaders: map[string]string{"Authorization": "Bearer sk-up-secret"}, wantModel: "gpt-4o-2024-08-06",
		},
		{
			name: "wildcard mapping, longest wins", platform: "openai",
			mapping: `{"gpt-*":"gpt-4.1","gpt-4o*":"gpt-4o-mini"}`, model: "gpt-4o-audio",
			wantHeaders: map[string]string{"Authorization": "Bearer sk-up-secret"}, wantModel: "gpt-4o-mini",
		},
		{
			name: "wildcard pass-through", platform: "openai", mapping: `{"o*":"o*"}`, model: "o4-mini",
			wantHeaders: map[string]string{"Authorization": "Bearer sk-up-secret"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := e.seedFixture(t, 5, tt.platform)
			acc := e.seedAccount(t, f.group, accountSeed{platform: tt.platform, apiKey: "sk-up-secret", mapping: tt.mapping})
			reqID := "req_" + t.Name() // unique: a request id keys the request's reservation
			rep := e.mustGrant(t, admission.Request{RequestID: reqID, APIKey: f.key, Model: tt.model})
			if rep.AccountID != acc || rep.UserID != f.user || rep.GroupID != f.group || rep.Platform != tt.platform ||
				rep.BaseURL != "http://upstream.test" || rep.RequestID != reqID || rep.APIKeyID == 0 {
				t.Fatalf("grant = %+v, want account %d user %d group %d", rep, acc, f.user, f.group)
			}
			if len(rep.GrantID) != 34 || rep.GrantID[:2] != "g_" {
				t.Fatalf("grant id %q, want g_ + 32 hex", rep.GrantID)
			}
			if len(rep.Headers) != len(tt.wantHeaders) {
				t.Fatalf("headers = %v, want %v", rep.Headers, tt.wantHeaders)
			}
			for k, v := range tt.wantHeaders {
				if rep.Headers[k] != v {
					t.Fatalf("headers = %v, want %v", rep.Headers, tt.wantHeaders)
				}
			}
			if rep.UpstreamModel != tt.wantModel {
				t.Fatalf("upstream_model = %q, want %q", rep.UpstreamModel, tt.wantModel)
			}
			if u, a := e.count(t, slots.KindUser, f.user), e.count(t, slots.KindAccount, acc); u != 1 || a != 1 {
				t.Fatalf("slots user=%d account=%d after a grant, want 1 and 1", u, a)
			}
		})
	}
}

func TestAdmitRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// The 404 names the models the key can use: the accounts' exact keys, never a wildcard.
	const msgModel = `Model "o3" is not supported by any configured account in this group; models available to this API key: gpt-4o`
	tests := []struct {
		name    string
		setup   func(t *testing.T) admission.Request
		status  int
		reason  string
		shape   string
		errType string
		message string
	}{
		{
			name:   "unknown key",
			setup:  func(t *testing.T) admission.Request { return admission.Request{APIKey: "sk-nope", Model: "gpt-4o"} },
			status: 401, reason: admission.ReasonAuth, errType: "authentication_error", message: "Invalid API key",
		},
		{
			name:   "missing key",
			setup:  func(t *testing.T) admission.Request { return admission.Request{Model: "gpt-4o"} },
			status: 401, reason: admission.ReasonAuth, errType: "authentication_error", message: "Invalid API key",
		},
		{
			name: "anthropic shape on /v1/messages",
			setup: func(t *testing.T) admission.Request {
				return admission.Request{APIKey: "sk-nope", Model: "claude-sonnet-4", Path: "/v1/messages"}
			},
			status: 401, reason: admission.ReasonAuth, shape: "anthropic", errType: "authentication_error", message: "Invalid API key",
		},
		{
			name: "disabled key",
			setup: func(t *testing.T) admission.Request {
				f := e.seedFixture(t, 5, "openai")
				e.exec(t, `UPDATE api_keys SET status = 'disabled' WHERE user_id = $1`, f.user)
				return admission.Request{APIKey: f.key, Model: "gpt-4o"}
			},
			status: 401, reason: admission.ReasonAuth, errType: "authentication_error", message: "Invalid API key",
		},
		{
			name: "deleted key",
			setup: func(t *testing.T) admission.Request {
				f := e.seedFixture(t, 5, "openai")
				e.exec(t, `UPDATE api_keys SET deleted_at = now() WHERE user_id = $1`, f.user)
				return admission.Request{APIKey: f.key, Model: "gpt-4o"}
			},
			status: 401, reason: admission.ReasonAuth, errType: "authentication_error", message: "Invalid API key",
		},
		{
			name: "disabled user",
			setup: func(t *testing.T) admission.Request {
				f := e.seedFixture(t, 5, "openai")
				e.exec(t, `UPDATE users SET status = 'disabled' WHERE id = $1`, f.user)
				return admission.Request{APIKey: f.key, Model: "gpt-4o"}
			},
			status: 401, reason: admission.ReasonAuth, errType: "authentication_error", message: "Invalid API key",
		},
		{
			name: "disabled group",
			setup: func(t *testing.T) admission.Request {
				f := e.seedFixture(t, 5, "openai")
				e.exec(t, `UPDATE groups SET status = 'disabled' WHERE id = $1`, f.group)
				return admission.Request{APIKey: f.key, Model: "gpt-4o"}
			},
			status: 401, reason: admission.ReasonAuth, errType: "authentication_error", message: "Invalid API key",
		},
		// Billing refusals in the OpenAI shape carry a code too: billing_test.go.
		{
			name: "negative balance, anthropic shape",
			setup: func(t *testing.T) admission.Request {
				f := e.seedFixture(t, 5, "anthropic")
				e.exec(t, `UPDATE users SET balance_micros = -5 WHERE id = $1`, f.user)
				return admission.Request{APIKey: f.key, Model: "claude-sonnet-4", Path: "/v1/messages"}
			},
			status: 402, reason: admission.ReasonBilling, shape: "anthropic", errType: "billing_error",
			message: "Insufficient balance: $0.00 available; add credit to continue",
		},
		{
			name: "user concurrency full",
			setup: func(t *testing.T) admission.Request {
				f := e.seedFixture(t, 1, "openai")
				e.seedAccount(t, f.group, accountSeed{})
				e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})
				return admission.Request{APIKey: f.key, Model: "gpt-4o"}
			},
			status: 429, reason: admission.ReasonUserConcurrency, errType: "rate_limit_error",
			message: "Concurrency limit exceeded for user, please retry later",
		},
		{
			name: "user concurrency zero",
			setup: func(t *testing.T) admission.Request {
				f := e.seedFixture(t, 0, "openai")
				e.seedAccount(t, f.group, accountSeed{})
				return admission.Request{APIKey: f.key, Model: "gpt-4o"}
			},
			status: 429, reason: admission.ReasonUserConcurrency, errType: "rate_limit_error",
			message: "Concurrency limit exceeded for user, please retry later",
		},
		{
			name: "no account maps the model",
			setup: func(t *testing.T) admission.Request {
				f := e.seedFixture(t, 5, "openai")
				e.seedAccount(t, f.group, accountSeed{mapping: `{"gpt-4o":"gpt-4o","gpt-4.1*":""}`})
				e.seedAccount(t, f.group, accountSeed{mapping: `{"gpt-5*":""}`})
				return admission.Request{APIKey: f.key, Model: "o3"}
			},
			status: 404, reason: admission.ReasonModelNotFound, errType: "model_not_found", message: msgModel,
		},
		{
			name: "model served only by an account of another platform",
			setup: func(t *testing.T) admission.Request {
				f := e.seedFixture(t, 5, "openai")
				e.seedAccount(t, f.group, accountSeed{mapping: `{"gpt-4o":""}`})
				e.seedAccount(t, f.group, accountSeed{platform: "anthropic"})
				return admission.Request{APIKey: f.key, Model: "o3"}
			},
			status: 404, reason: admission.ReasonModelNotFound, errType: "model_not_found", message: msgModel,
		},
		{
			name: "group without accounts",
			setup: func(t *testing.T) admission.Request {
				f := e.seedFixture(t, 5, "openai")
				return admission.Request{APIKey: f.key, Model: "gpt-4o"}
			},
			status: 503, reason: admission.ReasonNoAccount, errType: "api_error", message: "Service temporarily unavailable",
		},
		{
			name: "only account rate-limited",
			setup: func(t *testing.T) admission.Request {
				f := e.seedFixture(t, 5, "openai")
				a := e.seedAccount(t, f.group, accountSeed{mapping: `{"o3":""}`})
				e.exec(t, `UPDATE accounts SET rate_limited_until = now() + interval '1 minute' WHERE id = $1`, a)
				return admission.Request{APIKey: f.key, Model: "o3"}
			},
			status: 503, reason: admission.ReasonNoAccount, errType: "api_error", message: "Service temporarily unavailable",
		},
		{
			name: "accounts overloaded, paused, disabled, deleted",
			setup: func(t *testing.T) admission.Request {
				f := e.seedFixture(t, 5, "openai")
				a1 := e.seedAccount(t, f.group, accountSeed{})
				a2 := e.seedAccount(t, f.group, accountSeed{})
				a3 := e.seedAccount(t, f.group, accountSeed{})
				a4 := e.seedAccount(t, f.group, accountSeed{})
				e.exec(t, `UPDATE accounts SET overloaded_until = now() + interval '1 minute' WHERE id = $1`, a1)
				e.exec(t, `UPDATE accounts SET paused_until = now() + interval '1 minute' WHERE id = $1`, a2)
				e.exec(t, `UPDATE accounts SET status = 'disabled' WHERE id = $1`, a3)
				e.exec(t, `UPDATE accounts SET deleted_at = now() WHERE id = $1`, a4)
				return admission.Request{APIKey: f.key, Model: "gpt-4o"}
			},
			status: 503, reason: admission.ReasonNoAccount, errType: "api_error", message: "Service temporarily unavailable",
		},
		{
			name: "every account excluded",
			setup: func(t *testing.T) admission.Request {
				f := e.seedFixture(t, 5, "openai")
				a1 := e.seedAccount(t, f.group, accountSeed{})
				a2 := e.seedAccount(t, f.group, accountSeed{})
				return admission.Request{APIKey: f.key, Model: "gpt-4o", Exclude: []int64{a1, a2}}
			},
			status: 503, reason: admission.ReasonNoAccount, errType: "api_error", message: "Service temporarily unavailable",
		},
		{
			name: "every account full",
			setup: func(t *testing.T) admission.Request {
				f := e.seedFixture(t, 5, "openai")
				a1 := e.seedAccount(t, f.group, accountSeed{concurrency: 2})
				a2 := e.seedAccount(t, f.group, accountSeed{})
				e.exec(t, `UPDATE accounts SET concurrency = 0 WHERE id = $1`, a2) // takes no traffic at all
				e.fillAccount(t, a1, 2)
				return admission.Request{APIKey: f.key, Model: "gpt-4o"}
			},
			// The request waits on the least-loaded account and times out.
			status: 429, reason: admission.ReasonAccountConcurrency, errType: "rate_limit_error",
			message: "Concurrency limit exceeded for account, please retry later",
		},
		{
			name:   "model missing",
			setup:  func(t *testing.T) admission.Request { return admission.Request{APIKey: "sk-x"} },
			status: 400, reason: admission.ReasonInvalid, errType: "invalid_request_error", message: "model is required",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.setup(t)
			res := e.admit(t, req)
			wantError(t, res, tt.status, tt.reason, tt.shape, tt.errType, tt.message)
		})
	}
}

// A refused first admission leaves no grant: the user slot it took is given back.
func TestRefusedFirstAdmissionReleasesUserSlot(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedFixture(t, 1, "openai")
	e.seedAccount(t, f.group, accountSeed{mapping: `{"gpt-4o":""}`})
	for i := range 3 { // with a leak, the second try would be 429 (user concurrency 1)
		res := e.admit(t, admission.Request{APIKey: f.key, Model: "o3"})
		if res.status != http.StatusNotFound {
			t.Fatalf("try %d: status %d %s, want 404", i, res.status, res.body)
		}
	}
	if n := e.count(t, slots.KindUser, f.user); n != 0 {
		t.Fatalf("user slots = %d after refused admissions, want 0", n)
	}
	e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})
}

func TestInvalidAdmissionBody(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := e.post(t, "/internal/v1/admit", testSecret, `{"api_key": 12`)
	wantError(t, res, 400, admission.ReasonInvalid, "", "invalid_request_error", "Failed to parse admission request")
}

func TestPluginSecret(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, path := range []string{"/internal/v1/admit", "/internal/v1/reports", "/internal/v1/renew"} {
		for _, secret := range []string{"", "wrong", testSecret + "x", testSecret[:5]} {
			res := e.post(t, path, secret, `{}`)
			if res.status != http.StatusUnauthorized || res.reject != "" {
				t.Fatalf("%s with secret %q: %d reject %q, want 401 without reject header", path, secret, res.status, res.reject)
			}
		}
	}
}

func TestEmptySecretRefusesEverything(t *testing.T) {
	t.Parallel()
	s := &Service{noAuth: true}
	h := s.requireSecret(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("handler reached without a configured secret")
	}))
	rec := httptest.NewRecorder()
	req, _ := http.NewRequest(http.MethodPost, "/internal/v1/admit", nil)
	req.Header.Set(SecretHeader, "")
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", rec.Code)
	}
}

// A disabled key stops being served within the cache TTL (well within 5 s).
func TestDisabledKeyStopsWithinCacheTTL(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedFixture(t, 5, "openai")
	acc := e.seedAccount(t, f.group, accountSeed{})
	e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})
	e.exec(t, `UPDATE api_keys SET status = 'disabled' WHERE user_id = $1`, f.user)
	e.exec(t, `UPDATE accounts SET status = 'disabled' WHERE id = $1`, acc)
	time.Sleep(cacheTTL + 200*time.Millisecond)
	res := e.admit(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})
	if res.status != http.StatusUnauthorized {
		t.Fatalf("status %d after disabling the key, want 401", res.status)
	}
}

// During a rotation the previous secret is accepted next to the current one, and only then;
// an empty header never matches an unset previous secret; an overlong header is refused.
func TestPluginSecretRotation(t *testing.T) {
	t.Parallel()
	const current, previous = "current-secret-0123456789abcdef0123", "previous-secret-0123456789abcdef012"
	rotating := &Service{secret: sha256.Sum256([]byte(current)), previous: sha256.Sum256([]byte(previous)), hasPrevious: true}
	settled := &Service{secret: sha256.Sum256([]byte(current)), previous: sha256.Sum256([]byte("")), hasPrevious: false}
	overlong := strings.Repeat("s", maxSecretHeader+1)
	withPrevious := &Service{secret: sha256.Sum256([]byte(overlong)), previous: sha256.Sum256([]byte(previous)), hasPrevious: true}
	tests := []struct {
		name      string
		svc       *Service
		presented string
		want      int
	}{
		{"current while rotating", rotating, current, http.StatusOK},
		{"previous while rotating", rotating, previous, http.StatusOK},
		{"other while rotating", rotating, "other-secret-0123456789abcdef01234", http.StatusUnauthorized},
		{"current once settled", settled, current, http.StatusOK},
		{"previous once settled", settled, previous, http.StatusUnauthorized},
		{"empty once settled", settled, "", http.StatusUnauthorized},
		{"overlong, even if it is the secret", withPrevious, overlong, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.svc.requireSecret(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
			rec := httptest.NewRecorder()
			req, _ := http.NewRequest(http.MethodPost, "/internal/v1/renew", nil)
			req.Header.Set(SecretHeader, tt.presented)
			h.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d", rec.Code, tt.want)
			}
		})
	}
}
