package gateway

import (
	"testing"

	"github.com/poolgate/poolgate/controlsvc/internal/holds"
)

// The Redis money holds as tests read them (package holds).

// hold is the hold of one request of a user; ok is false when it holds nothing.
func (e *env) hold(t testing.TB, userID int64, requestID string) (holds.Ref, bool) {
	t.Helper()
	r, ok, err := e.svc.holds.Get(t.Context(), userID, requestID)
	if err != nil {
		t.Fatalf("reading hold of %s: %v", requestID, err)
	}
	return r, ok
}

// heldOf is what the user's holds keep on its balance, keys and subscriptions.
func (e *env) heldOf(t testing.TB, userID int64) holds.Held {
	t.Helper()
	h, err := e.svc.holds.HeldOf(t.Context(), userID)
	if err != nil {
		t.Fatalf("reading holds of user %d: %v", userID, err)
	}
	return h
}

// keyID is the id of the user's only key.
func (e *env) keyID(t testing.TB, userID int64) int64 {
	t.Helper()
	return e.queryInt(t, `SELECT id FROM api_keys WHERE user_id = $1`, userID)
}

// holdFor holds amount for another request of f's user, as a request in flight would.
func (e *env) holdFor(t testing.TB, f billFixture, requestID string, amount int64) {
	t.Helper()
	mode := e.queryString(t, `SELECT billing_mode FROM groups WHERE id = $1`, f.group)
	_, refusal, err := e.svc.holds.Reserve(t.Context(), holds.Request{RequestID: requestID, UserID: f.user,
		KeyID: e.keyID(t, f.user), GroupID: f.group, Mode: mode, AmountMicros: amount, MinAmountMicros: amount})
	if err != nil || refusal != nil {
		t.Fatalf("holding %d for %s: %v %+v", amount, requestID, err, refusal)
	}
}

func (e *env) queryString(t testing.TB, sql string, args ...any) string {
	t.Helper()
	var s string
	if err := e.st.Pool.QueryRow(t.Context(), sql, args...).Scan(&s); err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	return s
}
