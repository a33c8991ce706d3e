package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"
	"github.com/poolgate/poolgate/controlsvc/internal/gateway/health"
	"github.com/poolgate/poolgate/controlsvc/internal/gateway/ledger"
	"github.com/poolgate/poolgate/controlsvc/internal/slots"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
	"github.com/poolgate/poolgate/controlsvc/internal/usage"

	"github.com/poolgate/poolgate/plugin/wire"
)

// wantBillingError checks a billing refusal: the OpenAI envelope carries the type as code
// too, Anthropic's the type alone.
func wantBillingError(t *testing.T, res httpResult, status int, reason, shape, errType, message string) {
	t.Helper()
	if res.status != status || res.reject != reason {
		t.Fatalf("got %d reject %q (%s), want %d reject %q", res.status, res.reject, res.body, status, reason)
	}
	// OpenAI's code of a balance refusal is insufficient_quota (docs/billing.md, "Billing modes and eligibility").
	code := errType
	if errType == "billing_error" && strings.HasPrefix(message, "Insufficient balance") {
		code = "insufficient_quota"
	}
	var env struct {
		Type  string `json:"type"`
		Error struct {
			Type    string  `json:"type"`
			Message string  `json:"message"`
			Code    *string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(res.body, &env); err != nil {
		t.Fatalf("error body %s is not JSON: %v", res.body, err)
	}
	// A message ending in "..." is a prefix: the rest names amounts the case does not pin.
	msgOK := env.Error.Message == message
	if prefix, ok := strings.CutSuffix(message, "..."); ok {
		msgOK = strings.HasPrefix(env.Error.Message, prefix)
	}
	shapeOK := env.Type == "" && env.Error.Code != nil && *env.Error.Code == code
	if shape == "anthropic" {
		shapeOK = env.Type == "error" && env.Error.Code == nil
	}
	if !msgOK || !shapeOK || env.Error.Type != errType {
		t.Fatalf("body = %s, want type %q code %q message %q in the %q shape", res.body, errType, code, message, shape)
	}
}

// billFixture is a user with a key in a group with one account.
type billFixture struct {
	fixture
	account int64
}

func (e *env) seedBillFixture(t *testing.T, platform string, balanceMicros int64) billFixture {
	t.Helper()
	f := e.seedFixture(t, 50, platform)
	e.exec(t, `UPDATE users SET balance_micros = $2 WHERE id = $1`, f.user, balanceMicros)
	acc := e.seedAccount(t, f.group, accountSeed{platform: platform, concurrency: 200})
	return billFixture{fixture: f, account: acc}
}

// heldMicros is what the user's balance, keys and subscriptions have reserved.
func (e *env) heldMicros(t *testing.T, f billFixture) int64 {
	t.Helper()
	return e.heldOf(t, f.user).Sum()
}

// wantNothingHeld checks that a refused admission left no slot and no reservation: the
// reserved sums are what they were before (heldBefore).
func (e *env) wantNothingHeld(t *testing.T, f billFixture, heldBefore int64) {
	t.Helper()
	if u, a := e.count(t, slots.KindUser, f.user), e.count(t, slots.KindAccount, f.account); u != 0 || a != 0 {
		t.Errorf("slots after refusal: user %d account %d, want 0 and 0", u, a)
	}
	if n := e.heldOf(t, f.user).Holds; heldBefore == 0 && n != 0 {
		t.Errorf("%d holds after refusal", n)
	}
	if held := e.heldMicros(t, f); held != heldBefore {
		t.Errorf("%d micros reserved after refusal, %d before", held, heldBefore)
	}
}

// subscribe turns the fixture's group into a subscription group and gives the user a
// subscription that started `ago`.
func (e *env) subscribe(t *testing.T, f billFixture, ago time.Duration, daily, weekly, monthly any) int64 {
	t.Helper()
	e.exec(t, `UPDATE groups SET billing_mode = 'subscription', daily_limit_micros = $2, weekly_limit_micros = $3,
		monthly_limit_micros = $4 WHERE id = $1`, f.group, daily, weekly, monthly)
	return e.insertID(t, `INSERT INTO subscriptions (user_id, group_id, starts_at, expires_at)
		VALUES ($1, $2, now() - $3::interval, now() + interval '30 days') RETURNING id`,
		f.user, f.group, strconv.FormatInt(int64(ago/time.Second), 10)+" seconds")
}

// Every billing refusal of docs/billing.md, in the client's format, and none leaves a slot or
// a reservation behind.
func TestBillingRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const weekSecs = 7 * 24 * 3600
	tests := []struct {
		name     string
		platform string // default openai
		setup    func(t *testing.T, f billFixture) admission.Request
		status   int
		reason   string
		errType  string
		message  string
		// retryAfter: Retry-After must lie in [retryAfter-60, retryAfter] (0: no header)
		retryAfter int64
	}{
		{
			name: "key expired",
			setup: func(t *testing.T, f billFixture) admission.Request {
				e.exec(t, `UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE user_id = $1`, f.user)
				return admission.Request{}
			},
			status: 403, reason: admission.ReasonBilling, errType: "permission_error", message: "API key has expired",
		},
		{
			name: "zero balance, refused before any wait",
			setup: func(t *testing.T, f billFixture) admission.Request {
				e.exec(t, `UPDATE users SET balance_micros = 0 WHERE id = $1`, f.user)
				return admission.Request{}
			},
			status: 403, reason: admission.ReasonBilling, errType: "billing_error", message: "Insufficient balance: $0.00 available; add credit to continue",
		},
		{
			name: "balance below the estimate, refused with the slots held",
			setup: func(t *testing.T, f billFixture) admission.Request {
				e.exec(t, `UPDATE users SET balance_micros = 100 WHERE id = $1`, f.user)
				return admission.Request{}
			},
			// 2000 input tokens of gpt-4o are $0.005, more than the $0.0001 left; the whole
			// request (1000 output tokens) may cost $0.015.
			status: 403, reason: admission.ReasonBilling, errType: "billing_error",
			message: "Insufficient balance: $0.00 available; this request may cost up to $0.02 (max_tokens 1000 on gpt-4o)",
		},
		{
			name:     "balance held by others, anthropic shape",
			platform: "anthropic",
			setup: func(t *testing.T, f billFixture) admission.Request {
				e.exec(t, `UPDATE users SET balance_micros = 1000000 WHERE id = $1`, f.user)
				e.holdFor(t, f, "req_other", 999_000)
				return admission.Request{Model: "claude-sonnet-4", Path: "/v1/messages"}
			},
			// Anthropic's 402 billing_error on /v1/messages.
			status: 402, reason: admission.ReasonBilling, errType: "billing_error",
			message: "Insufficient balance: $0.00 available; this request may cost up to $0.03 (max_tokens 1000 on claude-sonnet-4)",
		},
		{
			name: "no subscription",
			setup: func(t *testing.T, f billFixture) admission.Request {
				e.exec(t, `UPDATE groups SET billing_mode = 'subscription' WHERE id = $1`, f.group)
				return admission.Request{}
			},
			status: 403, reason: admission.ReasonBilling, errType: "billing_error", message: "No active subscription found for this group",
		},
		{
			name: "subscription expired",
			setup: func(t *testing.T, f billFixture) admission.Request {
				e.subscribe(t, f, time.Hour, nil, nil, nil)
				e.exec(t, `UPDATE subscriptions SET starts_at = now() - interval '2 days', expires_at = now() - interval '1 day' WHERE user_id = $1`, f.user)
				return admission.Request{}
			},
			status: 403, reason: admission.ReasonBilling, errType: "billing_error", message: "No active subscription found for this group",
		},
		{
			name: "weekly window exhausted",
			setup: func(t *testing.T, f billFixture) admission.Request {
				e.subscribe(t, f, 2*24*time.Hour, nil, 1000, nil) // 1000 micros a week
				return admission.Request{}
			},
			status: 429, reason: admission.ReasonBilling, errType: "rate_limit_exceeded", message: "Weekly usage limit exceeded",
			retryAfter: weekSecs - 2*24*3600,
		},
		{
			name:     "daily window exhausted, anthropic shape",
			platform: "anthropic",
			setup: func(t *testing.T, f billFixture) admission.Request {
				e.subscribe(t, f, time.Hour, 1000, nil, nil)
				return admission.Request{Model: "claude-sonnet-4", Path: "/v1/messages"}
			},
			// Anthropic's type for a 429 (admission reject.go, anthropicErrorType); OpenAI clients get rate_limit_exceeded.
			status: 429, reason: admission.ReasonBilling, errType: "rate_limit_error", message: "Daily usage limit exceeded",
			retryAfter: -1, // up to the next midnight UTC: checked below
		},
		{
			name: "key quota exhausted",
			setup: func(t *testing.T, f billFixture) admission.Request {
				e.exec(t, `UPDATE api_keys SET quota_micros = 1000 WHERE user_id = $1`, f.user)
				return admission.Request{}
			},
			status: 429, reason: admission.ReasonBilling, errType: "insufficient_quota",
			message: "API key quota exhausted: $0.00 left; this request may cost up to $0.02 (max_tokens 1000 on gpt-4o)",
		},
		{
			name: "unpriced model",
			setup: func(t *testing.T, f billFixture) admission.Request {
				e.exec(t, `UPDATE accounts SET model_mapping = '{"gpt-4o":"gpt-unpriced-test"}' WHERE id = $1`, f.account)
				return admission.Request{}
			},
			status: 400, reason: admission.ReasonInvalid, errType: "invalid_request_error", message: "No price configured for model gpt-unpriced-test",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			platform := tt.platform
			if platform == "" {
				platform = "openai"
			}
			f := e.seedBillFixture(t, platform, 10_000_000)
			req := tt.setup(t, f)
			req.APIKey = f.key
			if req.Model == "" {
				req.Model = "gpt-4o"
			}
			req.InputBytes, req.MaxOutputTokens = 4000, 1000
			heldBefore := e.heldMicros(t, f)
			res := e.admit(t, req)
			shape := ""
			if req.Path == admission.AnthropicPath {
				shape = "anthropic"
			}
			if tt.reason == admission.ReasonInvalid {
				wantError(t, res, tt.status, tt.reason, shape, tt.errType, tt.message)
			} else {
				wantBillingError(t, res, tt.status, tt.reason, shape, tt.errType, tt.message)
			}
			switch {
			case tt.retryAfter == 0 && res.retryAfter != "":
				t.Errorf("Retry-After %q on a refusal without a window", res.retryAfter)
			case tt.retryAfter != 0:
				secs, err := strconv.ParseInt(res.retryAfter, 10, 64)
				want := tt.retryAfter
				if want < 0 {
					now := time.Now().UTC()
					midnight := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC)
					want = int64(midnight.Sub(now)/time.Second) + 1
				}
				if err != nil || secs > want || secs < want-60 || secs < 1 {
					t.Errorf("Retry-After %q, want about %d seconds", res.retryAfter, want)
				}
			}
			e.wantNothingHeld(t, f, heldBefore)
		})
	}
}

// The estimate of docs/billing.md: input ≤ input_bytes/2 tokens at the input price plus the
// output maximum (else the group's default) at the output price, times the user's rate,
// capped by the group's max_reserve; with the group's output cap, one input token per byte,
// never capped, and the grant carries the group's default as the output limit when the
// request names none.
func TestReservationEstimate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	gpt4o, _, ok := defaultPrices{}.Table().Lookup("gpt-4o")
	if !ok {
		t.Fatal("gpt-4o has no shipped price")
	}
	cost := func(in, out, rate int64) int64 {
		return usage.Cost(usage.Tokens{Input: in, Output: out}, gpt4o, rate)
	}
	tests := []struct {
		name       string
		setup      func(t *testing.T, f billFixture)
		inputBytes int64
		maxOutput  int64
		want       int64
		wantCap    int64 // the grant's max_output_tokens
	}{
		{name: "named output maximum", inputBytes: 1000, maxOutput: 100, want: cost(500, 100, usage.RateUnit)},
		{name: "odd body size rounds up", inputBytes: 1001, maxOutput: 100, want: cost(501, 100, usage.RateUnit)},
		{name: "group default output", inputBytes: 1000, want: cost(500, 4096, usage.RateUnit)},
		{
			name: "group's own default output",
			setup: func(t *testing.T, f billFixture) {
				e.exec(t, `UPDATE groups SET default_max_output_tokens = 10 WHERE id = $1`, f.group)
			},
			inputBytes: 1000, want: cost(500, 10, usage.RateUnit),
		},
		{
			name: "group rate",
			setup: func(t *testing.T, f billFixture) {
				e.exec(t, `UPDATE groups SET rate_multiplier = 2 WHERE id = $1`, f.group)
			},
			inputBytes: 1000, maxOutput: 100, want: cost(500, 100, 2*usage.RateUnit),
		},
		{
			name: "user's rate overrides the group's",
			setup: func(t *testing.T, f billFixture) {
				e.exec(t, `UPDATE groups SET rate_multiplier = 2 WHERE id = $1`, f.group)
				e.exec(t, `INSERT INTO user_group_rates (user_id, group_id, rate_multiplier) VALUES ($1, $2, 0.5)`, f.user, f.group)
			},
			inputBytes: 1000, maxOutput: 100, want: cost(500, 100, usage.RateUnit/2),
		},
		{
			name: "capped by max_reserve",
			setup: func(t *testing.T, f billFixture) {
				e.exec(t, `UPDATE groups SET max_reserve_micros = 777 WHERE id = $1`, f.group)
			},
			inputBytes: 1000, maxOutput: 100, want: 777,
		},
		{
			name: "output cap: the group's default is sent and reserved, input at a token per byte",
			setup: func(t *testing.T, f billFixture) {
				e.exec(t, `UPDATE groups SET cap_output_tokens = true, default_max_output_tokens = 10 WHERE id = $1`, f.group)
			},
			inputBytes: 1000, want: cost(1000, 10, usage.RateUnit), wantCap: 10,
		},
		{
			name: "output cap: a named maximum stays the client's",
			setup: func(t *testing.T, f billFixture) {
				e.exec(t, `UPDATE groups SET cap_output_tokens = true, default_max_output_tokens = 10 WHERE id = $1`, f.group)
			},
			inputBytes: 1000, maxOutput: 100, want: cost(1000, 100, usage.RateUnit),
		},
		{
			name: "output cap: max_reserve does not cut an upper bound",
			setup: func(t *testing.T, f billFixture) {
				e.exec(t, `UPDATE groups SET cap_output_tokens = true, max_reserve_micros = 777 WHERE id = $1`, f.group)
			},
			inputBytes: 1000, maxOutput: 100, want: cost(1000, 100, usage.RateUnit),
		},
		{
			name: "unpriced model the group serves: nothing held",
			setup: func(t *testing.T, f billFixture) {
				e.exec(t, `UPDATE groups SET allow_unpriced = true WHERE id = $1`, f.group)
				e.exec(t, `UPDATE accounts SET model_mapping = '{"gpt-4o":"gpt-unpriced-test"}' WHERE id = $1`, f.account)
			},
			inputBytes: 1000, maxOutput: 100, want: 0,
		},
		{
			name: "key quota holds the same amount",
			setup: func(t *testing.T, f billFixture) {
				e.exec(t, `UPDATE api_keys SET quota_micros = 5000000 WHERE user_id = $1`, f.user)
			},
			inputBytes: 1000, maxOutput: 100, want: cost(500, 100, usage.RateUnit),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := e.seedBillFixture(t, "openai", 10_000_000)
			if tt.setup != nil {
				tt.setup(t, f)
			}
			g := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o", InputBytes: tt.inputBytes, MaxOutputTokens: tt.maxOutput})
			if g.MaxOutputTokens != tt.wantCap {
				t.Errorf("grant max_output_tokens = %d, want %d", g.MaxOutputTokens, tt.wantCap)
			}
			res, ok := e.hold(t, f.user, g.RequestID)
			if !ok {
				t.Fatalf("no hold of %s", g.RequestID)
			}
			if res.AmountMicros != tt.want || res.BillingMode != store.BillingBalance {
				t.Fatalf("hold = %+v, want %d micros", res, tt.want)
			}
			h := e.heldOf(t, f.user)
			if h.Balance != tt.want {
				t.Errorf("held on the balance %d, want %d", h.Balance, tt.want)
			}
			quota := e.queryInt(t, `SELECT COALESCE(quota_micros, -1) FROM api_keys WHERE user_id = $1`, f.user)
			keyHeld := h.Keys[e.keyID(t, f.user)]
			if (quota >= 0 && keyHeld != tt.want) || (quota < 0 && keyHeld != 0) {
				t.Errorf("held on the key's quota %d (quota %d), want %d", keyHeld, quota, tt.want)
			}
		})
	}
}

// Reserve, report, settle: the balance drops by the record's cost and nothing stays held.
func TestReserveReportSettle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name   string
		status int
		usage  string
	}{
		{"success", 200, `{"input_tokens":300,"output_tokens":50}`},
		{"overrun beyond the estimate", 200, `{"input_tokens":300,"output_tokens":5000}`},
		{"health.Failure settles at 0", 502, `null`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := e.seedBillFixture(t, "openai", 10_000_000)
			g := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o", InputBytes: 1000, MaxOutputTokens: 100})
			held := e.heldOf(t, f.user).Balance
			if held == 0 {
				t.Fatal("nothing reserved at admission")
			}
			wantAccepted(t, e.sendReports(t, reportFor(g, tt.status, "responses", tt.usage)), 1)
			rec := e.usageRow(t, g.RequestID)
			if tt.status != 200 && rec.cost != 0 {
				t.Fatalf("failed request cost %d", rec.cost)
			}
			if tt.status == 200 && rec.cost == 0 {
				t.Fatal("successful request cost nothing")
			}
			if b := e.balance(t, f.user); b != 10_000_000-rec.cost {
				t.Errorf("balance %d, want %d - %d", b, 10_000_000, rec.cost)
			}
			if r := e.heldOf(t, f.user).Balance; r != 0 {
				t.Errorf("held %d after settlement", r)
			}
			if _, ok := e.hold(t, f.user, g.RequestID); ok {
				t.Error("hold left after settlement")
			}
			if got := e.queryInt(t, `SELECT reserved_micros FROM usage_records WHERE request_id = $1`, g.RequestID); got != held {
				t.Errorf("record's reserved_micros %d, want %d", got, held)
			}
			// A replayed report charges nothing more.
			wantAccepted(t, e.sendReports(t, reportFor(g, tt.status, "responses", tt.usage)), 1)
			if b := e.balance(t, f.user); b != 10_000_000-rec.cost {
				t.Errorf("balance %d after a replay, want %d", b, 10_000_000-rec.cost)
			}
		})
	}
}

// A subscription request is charged to the subscription's windows, not the balance.
func TestSubscriptionReserveSettle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedBillFixture(t, "openai", 0) // no balance at all: the subscription pays
	sub := e.subscribe(t, f, time.Hour, 5_000_000, 20_000_000, nil)
	g := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o", InputBytes: 1000, MaxOutputTokens: 100})
	if r := e.heldOf(t, f.user).Groups[f.group]; r == 0 {
		t.Fatal("nothing reserved on the subscription")
	}
	wantAccepted(t, e.sendReports(t, reportFor(g, 200, "responses", `{"input_tokens":300,"output_tokens":50}`)), 1)
	rec := e.usageRow(t, g.RequestID)
	if rec.cost == 0 {
		t.Fatal("request cost nothing")
	}
	daily := e.queryInt(t, `SELECT daily_used_micros FROM subscriptions WHERE id = $1`, sub)
	weekly := e.queryInt(t, `SELECT weekly_used_micros FROM subscriptions WHERE id = $1`, sub)
	reserved := e.heldOf(t, f.user).Groups[f.group]
	if daily != rec.cost || weekly != rec.cost || reserved != 0 {
		t.Errorf("subscription used daily %d weekly %d reserved %d, want %d %d 0", daily, weekly, reserved, rec.cost, rec.cost)
	}
	if b := e.balance(t, f.user); b != 0 {
		t.Errorf("balance %d, want untouched 0", b)
	}
}

// A failover re-admission neither reserves again nor is refused because the balance ran
// out meanwhile: the request's reservation covers every attempt.
func TestReadmissionDoesNotReserveAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedBillFixture(t, "openai", 10_000_000)
	backup := e.seedAccount(t, f.group, accountSeed{priority: 90})
	g := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o", InputBytes: 1000, MaxOutputTokens: 100})
	held := e.heldOf(t, f.user).Balance
	e.exec(t, `UPDATE users SET balance_micros = 0 WHERE id = $1`, f.user)
	time.Sleep(cacheTTL + 100*time.Millisecond) // the key cache holds the old balance
	again := e.mustGrant(t, admission.Request{RequestID: g.RequestID, GrantID: g.GrantID, APIKey: f.key, Model: "gpt-4o",
		InputBytes: 1000, MaxOutputTokens: 100, Exclude: []int64{f.account},
		Failed: &health.Failure{AccountID: f.account, Status: 500, ErrorClass: "upstream_status"}})
	if again.AccountID != backup {
		t.Fatalf("re-admission went to %d, want %d", again.AccountID, backup)
	}
	if h := e.heldOf(t, f.user); h.Balance != held || h.Holds != 1 {
		t.Errorf("held %d in %d holds after re-admission, want still %d in 1", h.Balance, h.Holds, held)
	}
	// A new request of the user is refused: nothing is left on the balance.
	res := e.admit(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})
	wantBillingError(t, res, 403, admission.ReasonBilling, "", "billing_error", "Insufficient balance: $0.00 available; add credit to continue")
}

// A waiting admission whose caller gives up leaves the queue: it never reserves, even when
// the slot it waited for comes free.
func TestAbandonedWaiterReservesNothing(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, DefaultLeaseTTL, admission.WaitConfig{UserTimeout: 5 * time.Second})
	f := e.seedBillFixture(t, "openai", 10_000_000)
	e.exec(t, `UPDATE users SET concurrency = 1 WHERE id = $1`, f.user)
	first := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})

	body, _ := json.Marshal(admission.Request{RequestID: "req_abandoned", APIKey: f.key, Path: "/v1/responses", Model: "gpt-4o"})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.url+"/internal/v1/admit", bytes.NewReader(body))
	req.Header.Set(SecretHeader, testSecret)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("waiting admission answered %d, want the caller to give up", resp.StatusCode)
	}
	wantAccepted(t, e.sendReports(t, reportFor(first, 200, "responses", `{"input_tokens":1,"output_tokens":1}`)), 1)
	time.Sleep(300 * time.Millisecond) // a waiter still queued would be served now
	if _, ok := e.hold(t, f.user, "req_abandoned"); ok {
		t.Fatal("abandoned waiter holds money")
	}
	if u, a := e.count(t, slots.KindUser, f.user), e.count(t, slots.KindAccount, f.account); u != 0 || a != 0 {
		t.Fatalf("slots user %d account %d after the abandoned wait", u, a)
	}
	if r := e.heldOf(t, f.user).Balance; r != 0 {
		t.Errorf("held %d after the abandoned wait", r)
	}
}

// A grant whose caller left before the answer (handleAdmit) gives back its slots and, for a
// first admission, its reservation; a re-admission gives back only the new account's slot.
func TestAbandonGrantGivesBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedBillFixture(t, "openai", 10_000_000)
	backup := e.seedAccount(t, f.group, accountSeed{priority: 90})

	g := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})
	again := e.mustGrant(t, admission.Request{RequestID: g.RequestID, GrantID: g.GrantID, APIKey: f.key, Model: "gpt-4o",
		Exclude: []int64{f.account}, Failed: &health.Failure{AccountID: f.account, Status: 500, ErrorClass: "upstream_status"}})
	e.svc.adm.AbandonGrant(t.Context(), &again, false)
	if u, a := e.count(t, slots.KindUser, f.user), e.count(t, slots.KindAccount, backup); u != 1 || a != 0 {
		t.Fatalf("after an abandoned re-admission: user slots %d (want the grant's 1), account %d (want 0)", u, a)
	}
	if _, ok := e.hold(t, f.user, g.RequestID); !ok {
		t.Fatal("an abandoned re-admission released the request's hold")
	}

	g2 := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})
	e.svc.adm.AbandonGrant(t.Context(), &g2, true)
	if _, ok := e.hold(t, f.user, g2.RequestID); ok {
		t.Fatal("an abandoned first admission kept its hold")
	}
	if u := e.count(t, slots.KindUser, f.user); u != 1 {
		t.Fatalf("user slots %d, want only the first request's 1", u)
	}
}

// The sweeper releases holds whose expiry passed and leaves younger ones.
func TestSweeperReleasesExpiredReservations(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedBillFixture(t, "openai", 10_000_000)
	old := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o", InputBytes: 1000, MaxOutputTokens: 100})
	young := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o", InputBytes: 1000, MaxOutputTokens: 100})
	youngRes, _ := e.hold(t, f.user, young.RequestID)
	// The old one's report is overdue: it expires now rather than in POOLGATE_RESERVATION_TTL.
	if err := e.rdb.ZAdd(t.Context(), "pg:holds:due", redis.Z{Score: float64(time.Now().Add(-time.Minute).UnixMilli()),
		Member: fmt.Sprintf("%d/%s", f.user, old.RequestID)}).Err(); err != nil {
		t.Fatal(err)
	}
	e.rdb.HSet(t.Context(), fmt.Sprintf("pg:{u:%d}:h:%s", f.user, old.RequestID), "x", time.Now().Add(-time.Minute).UnixMilli())

	w := ledger.NewSweeper(e.svc.holds, 20*time.Millisecond, e.svc.log)
	go w.Run()
	defer w.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := e.hold(t, f.user, old.RequestID); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("expired hold not released")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, ok := e.hold(t, f.user, young.RequestID); !ok {
		t.Fatal("young hold released")
	}
	if r := e.heldOf(t, f.user).Balance; r != youngRes.AmountMicros {
		t.Errorf("held %d, want only the young hold's %d", r, youngRes.AmountMicros)
	}
	if b := e.balance(t, f.user); b != 10_000_000 {
		t.Errorf("balance %d: releasing must charge nothing", b)
	}
}

// postInternal makes one internal API call from any goroutine (e.post fails the test, which
// only the test's goroutine may do).
func (e *env) postInternal(path string, v any) (httpResult, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return httpResult{}, err
	}
	req, err := http.NewRequest(http.MethodPost, e.url+path, bytes.NewReader(b))
	if err != nil {
		return httpResult{}, err
	}
	req.Header.Set(SecretHeader, testSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return httpResult{}, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return httpResult{}, err
	}
	return httpResult{status: resp.StatusCode, reject: resp.Header.Get(RejectHeader), body: buf.Bytes()}, nil
}

// parallelRun sends n admissions at once, each followed, when granted, by the report of the
// usage that usageOf gives for its grant; refusals must be the balance's. It returns how
// many were granted and which (by index), after checking that every request settled: the
// balance dropped by exactly what the records cost, nothing stays reserved and no slot is
// held. The caller checks what was spent against its bound.
func (e *env) parallelRun(t *testing.T, f billFixture, n int, admit func(i int) admission.Request,
	usageOf func(i int, g wire.Grant) (string, error)) (granted []bool, spent int64) {
	t.Helper()
	e.exec(t, `UPDATE users SET concurrency = 1000 WHERE id = $1`, f.user)
	e.exec(t, `UPDATE accounts SET concurrency = 1000 WHERE id = $1`, f.account)
	before := e.balance(t, f.user)
	type outcome struct {
		i       int
		granted bool
		refusal httpResult
		err     error
	}
	results := make(chan outcome, n)
	start := make(chan struct{})
	for i := range n {
		go func() {
			<-start
			o := outcome{i: i}
			defer func() { results <- o }()
			res, err := e.postInternal("/internal/v1/admit", admit(i))
			if err != nil {
				o.err = err
				return
			}
			if res.status != http.StatusOK {
				o.refusal = res
				return
			}
			var g wire.Grant
			if o.err = json.Unmarshal(res.body, &g); o.err != nil {
				return
			}
			o.granted = true
			u, err := usageOf(i, g)
			if err != nil {
				o.err = err
				return
			}
			rep, err := e.postInternal("/internal/v1/reports", reportsRequest{Reports: []report{reportFor(g, 200, "responses", u)}})
			if err == nil && rep.status != http.StatusOK {
				err = &reportError{rep}
			}
			o.err = err
		}()
	}
	close(start)
	granted = make([]bool, n)
	count := 0
	for range n {
		o := <-results
		if o.err != nil {
			t.Fatalf("request %d failed: %v", o.i, o.err)
		}
		if o.granted {
			granted[o.i] = true
			count++
			continue
		}
		wantBillingError(t, o.refusal, 403, admission.ReasonBilling, "", "billing_error", "Insufficient balance: $...")
	}
	spent = before - e.balance(t, f.user)
	records := e.queryInt(t, `SELECT COALESCE(sum(cost_micros), 0) FROM usage_records WHERE user_id = $1`, f.user)
	t.Logf("%d of %d granted; spent %d of %d micros", count, n, spent, before)
	if count == 0 || count == n {
		t.Errorf("%d of %d requests granted: the balance must admit some and refuse others", count, n)
	}
	if spent != records {
		t.Errorf("balance dropped by %d, the records cost %d", spent, records)
	}
	if h := e.heldOf(t, f.user); h.Balance != 0 || h.Holds != 0 {
		t.Errorf("held %d in %d holds after every request settled", h.Balance, h.Holds)
	}
	if u, a := e.count(t, slots.KindUser, f.user), e.count(t, slots.KindAccount, f.account); u != 0 || a != 0 {
		t.Errorf("slots user %d account %d after every request ended", u, a)
	}
	return granted, spent
}

// 100 parallel requests (admission, then report) on a balance worth 10 of them never spend
// more than the balance plus the overruns of the requests admitted (docs/billing.md, "Bound").
// Without reservations every request would pass the balance > 0 check and 100 would be
// charged.
func TestParallelRequestsNeverOverspend(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const (
		inputBytes = 2000 // 1000 input tokens in the estimate
		maxOutput  = 100
	)
	gpt4o, _, _ := defaultPrices{}.Table().Lookup("gpt-4o")
	estimate := usage.Cost(usage.Tokens{Input: inputBytes / 2, Output: maxOutput}, gpt4o, usage.RateUnit)
	fitting := `{"input_tokens":1000,"output_tokens":100}` // costs exactly the estimate
	overrun := `{"input_tokens":1000,"output_tokens":300}` // 200 output tokens beyond it
	overrunMicros := usage.Cost(usage.Tokens{Input: 1000, Output: 300}, gpt4o, usage.RateUnit) - estimate
	balance := 10 * estimate
	f := e.seedBillFixture(t, "openai", balance)

	granted, spent := e.parallelRun(t, f, 100, func(i int) admission.Request {
		return admission.Request{RequestID: "req_par_" + strconv.Itoa(i), APIKey: f.key, Path: "/v1/responses",
			Model: "gpt-4o", InputBytes: inputBytes, MaxOutputTokens: maxOutput}
	}, func(i int, _ wire.Grant) (string, error) {
		if i%3 == 0 {
			return overrun, nil
		}
		return fitting, nil
	})
	overruns := int64(0)
	for i, ok := range granted {
		if ok && i%3 == 0 {
			overruns += overrunMicros
		}
	}
	if spent > balance+overruns {
		t.Errorf("spent %d, beyond the balance %d plus the overruns %d", spent, balance, overruns)
	}
}

// With the group's output cap, 100 parallel requests that name no output maximum, on a
// balance worth 10 of them, spend no more than the balance: every reservation is an upper
// bound, since the upstream is sent the limit the reservation covers and a text prompt has
// at most one token per byte. Each simulated upstream honours the limit it was sent and
// reports as many input tokens as the body had bytes (the worst case).
func TestParallelCappedRequestsStayWithinTheBalance(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const (
		inputBytes = 1000
		limit      = 100
	)
	gpt4o, _, _ := defaultPrices{}.Table().Lookup("gpt-4o")
	reservation := usage.Cost(usage.Tokens{Input: inputBytes, Output: limit}, gpt4o, usage.RateUnit)
	balance := 10 * reservation
	f := e.seedBillFixture(t, "openai", balance)
	e.exec(t, `UPDATE groups SET cap_output_tokens = true, default_max_output_tokens = $2 WHERE id = $1`, f.group, limit)

	granted, spent := e.parallelRun(t, f, 100, func(i int) admission.Request {
		return admission.Request{RequestID: "req_cap_" + strconv.Itoa(i), APIKey: f.key, Path: "/v1/responses",
			Model: "gpt-4o", InputBytes: inputBytes}
	}, func(_ int, g wire.Grant) (string, error) {
		if g.MaxOutputTokens != limit {
			return "", fmt.Errorf("grant max_output_tokens = %d, want %d", g.MaxOutputTokens, limit)
		}
		// The model would have written 5000 tokens; the upstream stops at the limit.
		out := min(int64(5000), g.MaxOutputTokens)
		return `{"input_tokens":` + strconv.Itoa(inputBytes) + `,"output_tokens":` + strconv.FormatInt(out, 10) + `}`, nil
	})
	n := int64(0)
	for _, ok := range granted {
		if ok {
			n++
		}
	}
	if spent > balance {
		t.Errorf("spent %d of a balance of %d: a capped reservation must be an upper bound", spent, balance)
	}
	if spent != n*reservation {
		t.Errorf("spent %d for %d requests of %d each", spent, n, reservation)
	}
}

type reportError struct{ res httpResult }

func (r *reportError) Error() string {
	return "reports answered " + strconv.Itoa(r.res.status) + ": " + string(r.res.body)
}
