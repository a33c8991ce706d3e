package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/billing"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// KeyUsagePath is the public endpoint where a gateway key reads its own usage and what it
// has left. Traefik routes GET on it to controlsvc (traefik-dynamic.yml).
const KeyUsagePath = "/v1/usage"

// keyUsageView is the answer of GET /v1/usage (docs/billing.md, "Usage API").
type keyUsageView struct {
	Object      string            `json:"object"` // "usage"
	APIKey      keyView           `json:"api_key"`
	BillingMode string            `json:"billing_mode"`
	TimeZone    string            `json:"time_zone"` // of "today" and "month"
	Usage       keyTotalsView     `json:"usage"`
	Balance     *balanceView      `json:"balance"`      // balance mode; else null
	Sub         *subscriptionView `json:"subscription"` // subscription mode with one active now; else null
}

type keyView struct {
	ID        int64         `json:"id"`
	Name      string        `json:"name"`
	ExpiresAt *time.Time    `json:"expires_at"`
	Quota     *keyQuotaView `json:"quota"` // null: the key has no quota
}

type keyQuotaView struct {
	LimitUSD     json.Number `json:"limit_usd"`
	UsedUSD      json.Number `json:"used_usd"`
	ReservedUSD  json.Number `json:"reserved_usd"`  // held by requests in flight
	RemainingUSD json.Number `json:"remaining_usd"` // limit − used − reserved, at least 0
}

type keyTotalsView struct {
	Today totalsView `json:"today"`
	Month totalsView `json:"month"`
	Total totalsView `json:"total"`
}

type balanceView struct {
	BalanceUSD   json.Number `json:"balance_usd"`
	ReservedUSD  json.Number `json:"reserved_usd"`
	RemainingUSD json.Number `json:"remaining_usd"` // balance − reserved; negative after an overrun
}

type subscriptionView struct {
	ID          int64                 `json:"id"`
	StartsAt    time.Time             `json:"starts_at"`
	ExpiresAt   time.Time             `json:"expires_at"`
	ReservedUSD json.Number           `json:"reserved_usd"`
	Windows     map[string]windowView `json:"windows"` // daily, weekly, monthly
}

type windowView struct {
	UsedUSD      json.Number  `json:"used_usd"`
	LimitUSD     *json.Number `json:"limit_usd"`     // null: unlimited
	RemainingUSD *json.Number `json:"remaining_usd"` // limit − used − reserved, at least 0; null: unlimited
	ResetsAt     time.Time    `json:"resets_at"`
}

// keyUsage serves GET /v1/usage to a gateway key (Authorization: Bearer or x-api-key). A
// missing, unknown or disabled key gets 401 in the OpenAI error format. Answers come from
// memory for a second, refusals of unknown keys for longer (usage_key_cache.go).
func (a *API) keyUsage(w http.ResponseWriter, r *http.Request) {
	key := gatewayKey(r.Header)
	if key == "" || len(key) > maxGatewayKeyLen {
		writeKeyUnauthorized(w)
		return
	}
	hash := store.HashAPIKey(key)
	body, err := a.keyUsages.get(r.Context(), hash, func(ctx context.Context) ([]byte, error) {
		return a.renderKeyUsage(ctx, hash)
	})
	if errors.As(err, new(errUnknownKey)) {
		writeKeyUnauthorized(w)
		return
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body) // a failure means the client went away
}

// renderKeyUsage reads the usage of the key with that hash and encodes the answer;
// errUnknownKey{} for no usable key.
func (a *API) renderKeyUsage(ctx context.Context, hash string) ([]byte, error) {
	loc := billing.Location()
	now := time.Now()
	today := billing.DailyWindow(now, loc).Start
	local := now.In(loc)
	month := time.Date(local.Year(), local.Month(), 1, 0, 0, 0, 0, loc)
	k, err := a.st.KeyUsage(ctx, hash, now, today, month)
	if errors.Is(err, store.ErrKeyUnknown) {
		return nil, errUnknownKey{}
	}
	if err != nil {
		return nil, err
	}
	a.withHeldKeyUsage(ctx, &k)
	out := keyUsageView{
		Object:      "usage",
		APIKey:      keyView{ID: k.KeyID, Name: k.KeyName, ExpiresAt: k.ExpiresAt},
		BillingMode: k.BillingMode,
		TimeZone:    loc.String(),
		Usage:       keyTotalsView{Today: newTotalsView(k.Today), Month: newTotalsView(k.Month), Total: newTotalsView(k.Total)},
	}
	if k.QuotaMicros != nil {
		out.APIKey.Quota = &keyQuotaView{
			LimitUSD: formatMicros(*k.QuotaMicros), UsedUSD: formatMicros(k.QuotaUsedMicros),
			ReservedUSD:  formatMicros(k.QuotaReservedMicros),
			RemainingUSD: formatMicros(max(0, *k.QuotaMicros-k.QuotaUsedMicros-k.QuotaReservedMicros)),
		}
	}
	switch {
	case k.BillingMode != store.BillingSubscription:
		out.Balance = &balanceView{BalanceUSD: formatMicros(k.BalanceMicros), ReservedUSD: formatMicros(k.ReservedMicros),
			RemainingUSD: formatMicros(k.BalanceMicros - k.ReservedMicros)}
	case k.Subscription != nil:
		out.Sub = newSubscriptionView(k, now, loc)
	}
	body, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encoding key usage: %w", err)
	}
	return append(body, '\n'), nil // as writeJSON's encoder ends it
}

// newSubscriptionView shows the subscription's current windows: usage recorded in an older
// window counts as 0 (package billing).
func newSubscriptionView(k store.KeyUsage, now time.Time, loc *time.Location) *subscriptionView {
	s := k.Subscription
	cur := billing.CurrentWindows(s.StartsAt, now, loc)
	window := func(used int64, start *time.Time, cur billing.Window, limit *int64) windowView {
		used = billing.UsedNow(used, start, cur)
		v := windowView{UsedUSD: formatMicros(used), ResetsAt: cur.End.UTC()}
		if limit != nil {
			l, rem := formatMicros(*limit), formatMicros(max(0, *limit-used-s.ReservedMicros))
			v.LimitUSD, v.RemainingUSD = &l, &rem
		}
		return v
	}
	return &subscriptionView{
		ID: s.ID, StartsAt: s.StartsAt, ExpiresAt: s.ExpiresAt, ReservedUSD: formatMicros(s.ReservedMicros),
		Windows: map[string]windowView{
			billing.Daily:   window(s.DailyUsedMicros, s.DailyWindowStart, cur.Daily, k.DailyLimitMicros),
			billing.Weekly:  window(s.WeeklyUsedMicros, s.WeeklyWindowStart, cur.Weekly, k.WeeklyLimitMicros),
			billing.Monthly: window(s.MonthlyUsedMicros, s.MonthlyWindowStart, cur.Monthly, k.MonthlyLimitMicros),
		},
	}
}

// gatewayKey reads the client's key as the plugin does: Authorization: Bearer, else x-api-key.
func gatewayKey(h http.Header) string {
	if v := h.Get("Authorization"); len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		if k := strings.TrimSpace(v[7:]); k != "" {
			return k
		}
	}
	return strings.TrimSpace(h.Get("X-Api-Key"))
}

// writeKeyUnauthorized answers like the gateway refuses a bad key (OpenAI's error format).
func writeKeyUnauthorized(w http.ResponseWriter) {
	writeJSON(w, http.StatusUnauthorized, errorBody{Error: errorDetail{Type: typeAuthentication, Message: "Invalid API key"}})
}
