package adminapi

import (
	"net/http"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/holds"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// An admin change of money reaches admission at once: the balance adjustment, the key's
// quota and a new subscription each drop exactly the wallet copies they change, which
// admission then reloads (with a refresh of an hour, nothing else would reload them).
func TestAdminChangesInvalidateWallets(t *testing.T) {
	t.Parallel()
	var h *holds.Holds
	e := newEnvWith(t, func(o *Options, rdb *redis.Client) {
		h = holds.New(rdb, o.Store, time.Hour, time.Hour)
		o.Wallets = h
	})
	user := e.createUser("w") // balance 10
	group := e.createGroup("wg", "openai")
	key, _ := e.createKey(user, group)
	subGroup := e.createSubscriptionGroup("ws", `,"daily_limit_usd":5`)
	subKey, _ := e.createKey(user, subGroup)
	reserve := func(id string, keyID, groupID int64, mode string, amount int64) (holds.Hold, *store.BillingRefusal) {
		t.Helper()
		hold, refusal, err := h.Reserve(t.Context(), holds.Request{RequestID: id, UserID: user, KeyID: keyID, GroupID: groupID,
			Mode: mode, AmountMicros: amount, MinAmountMicros: 1})
		if err != nil {
			t.Fatal(err)
		}
		return hold, refusal
	}
	tests := []struct {
		name   string
		change func()
		check  func(t *testing.T)
	}{
		{"balance adjustment", func() {
			e.mustCall(http.MethodPost, "/api/v1/admin/users/"+itoa(user)+"/balance", `{"amount_usd":-9,"note":"x"}`, http.StatusOK, nil)
		}, func(t *testing.T) {
			if hold, r := reserve("b", key, group, store.BillingBalance, 5_000_000); r != nil || hold.AmountMicros != 1_000_000 {
				t.Errorf("after the debit: %+v %+v, want 1 M held (the balance left)", hold, r)
			}
			// The admin view shows the Redis hold as reserved.
			var u userView
			e.mustCall(http.MethodGet, "/api/v1/admin/users/"+itoa(user), nil, http.StatusOK, &u)
			if u.ReservedUSD != "1" || u.AvailableUSD != "0" {
				t.Errorf("user view reserved %s available %s, want 1 and 0", u.ReservedUSD, u.AvailableUSD)
			}
		}},
		{"key quota", func() {
			e.mustCall(http.MethodPatch, "/api/v1/admin/api-keys/"+itoa(key), `{"quota_usd":0.5}`, http.StatusOK, nil)
		}, func(t *testing.T) {
			if hold, r := reserve("k", key, group, store.BillingBalance, 5_000_000); r != nil || hold.AmountMicros != 500_000 {
				t.Errorf("after the quota: %+v %+v, want 0.5 M held", hold, r)
			}
		}},
		{"new subscription", func() {
			e.mustCall(http.MethodPost, "/api/v1/admin/subscriptions", `{"user_id":`+itoa(user)+`,"group_id":`+itoa(subGroup)+`,"duration_days":30}`,
				http.StatusCreated, nil)
		}, func(t *testing.T) {
			if hold, r := reserve("s", subKey, subGroup, store.BillingSubscription, 9_000_000); r != nil || hold.AmountMicros != 5_000_000 {
				t.Errorf("after subscribing: %+v %+v, want 5 M held (the daily limit)", hold, r)
			}
		}},
	}
	// Load every wallet first: the balance, the key and the (empty) subscription.
	if _, r := reserve("warm", key, group, store.BillingBalance, 1); r != nil {
		t.Fatalf("warm-up refused: %+v", r)
	}
	if _, r := reserve("warm-sub", subKey, subGroup, store.BillingSubscription, 1); r == nil || r.Kind != store.RefuseNoSubscription {
		t.Fatalf("warm-up of the subscription: %+v, want no subscription", r)
	}
	if _, err := h.Release(t.Context(), user, "warm"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		tt.change()
		t.Run(tt.name, tt.check)
		if _, err := h.Release(t.Context(), user, "b", "k", "s"); err != nil {
			t.Fatal(err)
		}
	}
}
