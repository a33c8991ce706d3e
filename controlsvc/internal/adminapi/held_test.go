package adminapi

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/holds"
)

// newEnvWithHolds is newEnv whose views read the reserved amounts from h's Redis holds.
func newEnvWithHolds(t *testing.T) (*env, *holds.Holds) {
	t.Helper()
	var h *holds.Holds
	e := newEnvWith(t, func(o *Options, rdb *redis.Client) {
		h = holds.New(rdb, o.Store, time.Hour, time.Hour)
		o.Wallets = h
	})
	return e, h
}

// hold holds exactly amount for request id on the user's key in group (billed by mode), as
// admission does; anything less fails the test.
func hold(t *testing.T, h *holds.Holds, id string, user, key, group int64, mode string, amount int64) {
	t.Helper()
	got, refusal, err := h.Reserve(t.Context(), holds.Request{RequestID: id, UserID: user, KeyID: key, GroupID: group,
		Mode: mode, AmountMicros: amount, MinAmountMicros: amount})
	if err != nil || refusal != nil || got.AmountMicros != amount {
		t.Fatalf("holding %d for %s: %+v, %+v, %v", amount, id, got, refusal, err)
	}
}
