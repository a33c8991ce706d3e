package adminapi

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/billing"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// keyCall sends GET /v1/usage with the given headers.
func (e *env) keyCall(hdr map[string]string) (int, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.srv.URL+KeyUsagePath, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		e.t.Errorf("GET /v1/usage: Content-Type %q", ct)
	}
	return resp.StatusCode, raw
}

// expireKeyUsages ends the second GET /v1/usage answers are kept, so a test sees the
// rows it just changed in SQL.
func (e *env) expireKeyUsages() { e.api.keyUsages.answers.Invalidate() }

func (e *env) createKey(user, group int64) (int64, string) {
	e.t.Helper()
	var k struct {
		ID  int64  `json:"id"`
		Key string `json:"key"`
	}
	e.mustCall(http.MethodPost, "/api/v1/admin/api-keys", map[string]any{"user_id": user, "group_id": group, "name": "mine"},
		http.StatusCreated, &k)
	return k.ID, k.Key
}

func TestKeyUsageBalanceMode(t *testing.T) {
	t.Parallel()
	e, h := newEnvWithHolds(t)
	user, group := e.createUser("ku"), e.createGroup("ku", "openai")
	keyID, key := e.createKey(user, group)
	otherID, _ := e.createKey(user, group)
	now := time.Now()
	insertUsage(t, e, "today-1", user, keyID, 0, 1_250_000, now.Add(-time.Second))
	insertUsage(t, e, "today-2", user, keyID, 0, 250_000, now.Add(-2*time.Second))
	insertUsage(t, e, "long-ago", user, keyID, 0, 3, now.AddDate(-1, 0, 0))
	insertUsage(t, e, "other-key", user, otherID, 0, 999, now)
	hold(t, h, "in-flight", user, keyID, group, store.BillingBalance, 500_000)

	for name, hdr := range map[string]map[string]string{
		"bearer":    {"Authorization": "Bearer " + key},
		"x-api-key": {"X-Api-Key": key},
	} {
		status, raw := e.keyCall(hdr)
		if status != http.StatusOK {
			t.Fatalf("%s: GET /v1/usage = %d %s", name, status, raw)
		}
		var got keyUsageView
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatal(err)
		}
		today := totalsView{Requests: 2, InputTokens: 200, OutputTokens: 100, CacheReadTokens: 60, CacheCreationTokens: 10,
			ReasoningTokens: 40, CostUSD: "1.5", InputCostUSD: "0.375", OutputCostUSD: "1.125", CacheReadCostUSD: "0",
			CacheWriteCostUSD: "0"}
		if got.Object != "usage" || got.APIKey.ID != keyID || got.APIKey.Name != "mine" || got.APIKey.Quota != nil ||
			got.BillingMode != "balance" || got.TimeZone != "UTC" || got.Usage.Today != today || got.Usage.Month != today ||
			got.Usage.Total.Requests != 3 || got.Usage.Total.CostUSD != "1.500003" || got.Sub != nil {
			t.Errorf("%s: usage = %s", name, raw)
		}
		// The user was created with 10 USD; 0.5 are held by requests in flight.
		if got.Balance == nil || got.Balance.BalanceUSD != "10" || got.Balance.ReservedUSD != "0.5" ||
			got.Balance.RemainingUSD != "9.5" {
			t.Errorf("%s: balance = %+v", name, got.Balance)
		}
	}

	// A key quota shows what is left of it (set through the API, which drops the key's
	// wallet copy, so the next hold loads the quota).
	if _, err := e.st.Pool.Exec(t.Context(), `UPDATE api_keys SET quota_used_micros = 1500000 WHERE id = $1`, keyID); err != nil {
		t.Fatal(err)
	}
	e.mustCall(http.MethodPatch, "/api/v1/admin/api-keys/"+itoa(keyID), `{"quota_usd":2}`, http.StatusOK, nil)
	hold(t, h, "on-quota", user, keyID, group, store.BillingBalance, 100_000)
	e.expireKeyUsages()
	_, raw := e.keyCall(map[string]string{"Authorization": "Bearer " + key})
	var got keyUsageView
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if q := got.APIKey.Quota; q == nil || q.LimitUSD != "2" || q.UsedUSD != "1.5" || q.ReservedUSD != "0.1" || q.RemainingUSD != "0.4" {
		t.Errorf("quota = %+v", got.APIKey.Quota)
	}
}

func TestKeyUsageSubscriptionMode(t *testing.T) {
	t.Parallel()
	e, h := newEnvWithHolds(t)
	user, group := e.createUser("ks"), e.createGroup("ks", "openai")
	keyID, key := e.createKey(user, group)
	now := time.Now().Truncate(time.Microsecond) // PostgreSQL's precision
	startsAt := now.Add(-9 * 24 * time.Hour)     // the second weekly window, the first monthly one
	daily := billing.DailyWindow(now, time.UTC)
	for _, sql := range []string{
		`UPDATE groups SET billing_mode = 'subscription', daily_limit_micros = 2000000, monthly_limit_micros = 50000000 WHERE id = $1`,
	} {
		if _, err := e.st.Pool.Exec(t.Context(), sql, group); err != nil {
			t.Fatal(err)
		}
	}
	// Weekly usage recorded in the first week no longer counts.
	if _, err := e.st.Pool.Exec(t.Context(), `INSERT INTO subscriptions (user_id, group_id, starts_at, expires_at,
		daily_window_start, daily_used_micros, weekly_window_start, weekly_used_micros,
		monthly_window_start, monthly_used_micros)
		VALUES ($1, $2, $3, $4, $5, 750000, $3, 9000000, $3, 12000000)`,
		user, group, startsAt, now.Add(21*24*time.Hour), daily.Start); err != nil {
		t.Fatal(err)
	}
	insertUsage(t, e, "sub-1", user, keyID, 0, 750_000, now)
	hold(t, h, "in-flight", user, keyID, group, store.BillingSubscription, 250_000)

	status, raw := e.keyCall(map[string]string{"Authorization": "Bearer " + key})
	if status != http.StatusOK {
		t.Fatalf("GET /v1/usage = %d %s", status, raw)
	}
	var got keyUsageView
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if got.BillingMode != "subscription" || got.Balance != nil || got.Sub == nil || got.Usage.Today.CostUSD != "0.75" {
		t.Fatalf("usage = %s", raw)
	}
	num := func(s string) *json.Number { n := json.Number(s); return &n }
	want := map[string]windowView{
		"daily":   {UsedUSD: "0.75", LimitUSD: num("2"), RemainingUSD: num("1"), ResetsAt: daily.End.UTC()},
		"weekly":  {UsedUSD: "0", ResetsAt: startsAt.Add(14 * 24 * time.Hour).UTC()},
		"monthly": {UsedUSD: "12", LimitUSD: num("50"), RemainingUSD: num("37.75"), ResetsAt: startsAt.Add(30 * 24 * time.Hour).UTC()},
	}
	for name, w := range want {
		g, ok := got.Sub.Windows[name]
		if !ok || g.UsedUSD != w.UsedUSD || !g.ResetsAt.Equal(w.ResetsAt) || !sameNumber(g.LimitUSD, w.LimitUSD) ||
			!sameNumber(g.RemainingUSD, w.RemainingUSD) {
			t.Errorf("%s window = %+v, want %+v", name, g, w)
		}
	}
	if got.Sub.ReservedUSD != "0.25" {
		t.Errorf("reserved = %s", got.Sub.ReservedUSD)
	}

	// Without an active subscription: subscription null, no balance either.
	if _, err := e.st.Pool.Exec(t.Context(), `UPDATE subscriptions SET status = 'cancelled' WHERE user_id = $1`, user); err != nil {
		t.Fatal(err)
	}
	e.expireKeyUsages()
	_, raw = e.keyCall(map[string]string{"Authorization": "Bearer " + key})
	var none map[string]json.RawMessage
	if err := json.Unmarshal(raw, &none); err != nil || string(none["subscription"]) != "null" || string(none["balance"]) != "null" {
		t.Errorf("without a subscription: %s", raw)
	}
}

func sameNumber(a, b *json.Number) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func TestKeyUsageRefusesBadKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	user, group := e.createUser("kb"), e.createGroup("kb", "openai")
	keyID, key := e.createKey(user, group)
	e.mustCall(http.MethodDelete, "/api/v1/admin/api-keys/"+itoa(keyID), nil, http.StatusNoContent, nil)
	for name, hdr := range map[string]map[string]string{
		"none":         nil,
		"unknown":      {"Authorization": "Bearer sk-pg-nope"},
		"empty bearer": {"Authorization": "Bearer "},
		"admin token":  {"Authorization": "Bearer " + testToken},
		"deleted key":  {"X-Api-Key": key},
		"basic scheme": {"Authorization": "Basic " + key},
	} {
		status, raw := e.keyCall(hdr)
		var ae apiErr
		if err := json.Unmarshal(raw, &ae); err != nil || status != http.StatusUnauthorized ||
			ae.Error.Type != "authentication_error" || ae.Error.Message != "Invalid API key" {
			t.Errorf("%s: GET /v1/usage = %d %s, want 401 authentication_error Invalid API key", name, status, raw)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+KeyUsagePath, nil)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /v1/usage = %d, want 405", resp.StatusCode)
	}
}
