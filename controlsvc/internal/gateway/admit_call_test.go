package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"
	"github.com/poolgate/poolgate/controlsvc/internal/slots"
)

// deadlineIn is a deadline_ms d from now.
func deadlineIn(d time.Duration) int64 { return time.Now().Add(d).UnixMilli() }

// wantReleased checks that nothing of the request is held: no slot of the user or the
// account, no reservation of requestID, nothing reserved on the user's balance.
func (e *env) wantReleased(t *testing.T, f billFixture, requestID string) {
	t.Helper()
	if u, a := e.count(t, slots.KindUser, f.user), e.count(t, slots.KindAccount, f.account); u != 0 || a != 0 {
		t.Errorf("slots: user %d account %d, want 0 and 0", u, a)
	}
	if _, ok := e.hold(t, f.user, requestID); ok {
		t.Errorf("hold of %s left", requestID)
	}
	if r := e.heldMicros(t, f); r != 0 {
		t.Errorf("%d µ reserved on the user, want 0", r)
	}
}

// A deadline that has passed (or is too close to answer by) is refused before anything is
// taken; a negative one is malformed.
func TestAdmitDeadlineOnArrival(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedBillFixture(t, "openai", 10_000_000)
	tests := []struct {
		name     string
		deadline int64
		status   int
		reason   string
		errType  string
		message  string
	}{
		{name: "passed a second ago", deadline: deadlineIn(-time.Second), status: 504, reason: admission.ReasonDeadline,
			errType: "api_error", message: "Admission deadline passed, please retry"},
		{name: "within the answer margin", deadline: deadlineIn(100 * time.Millisecond), status: 504,
			reason: admission.ReasonDeadline, errType: "api_error", message: "Admission deadline passed, please retry"},
		{name: "negative", deadline: -5, status: 400, reason: admission.ReasonInvalid, errType: "invalid_request_error",
			message: "Invalid deadline_ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reqID := "req_" + t.Name()
			res := e.admit(t, admission.Request{RequestID: reqID, APIKey: f.key, Model: "gpt-4o", DeadlineMs: tt.deadline})
			wantError(t, res, tt.status, tt.reason, "openai", tt.errType, tt.message)
			e.wantReleased(t, f, reqID)
		})
	}
	// A deadline far enough ahead admits as before.
	g := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o", DeadlineMs: deadlineIn(10 * time.Second)})
	if g.GrantID == "" {
		t.Fatal("no grant id")
	}
}

// The deadline caps the wait budget: the wait ends admission.WaitMargin before it with the queue's own
// refusal, whether max_wait_ms is absent or longer.
func TestAdmitDeadlineEndsTheWait(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, DefaultLeaseTTL, admission.WaitConfig{UserTimeout: 20 * time.Second})
	f := e.seedFixture(t, 1, "openai")
	e.seedAccount(t, f.group, accountSeed{})
	e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"}) // holds the user's one slot

	tests := []struct {
		name    string
		maxWait *int64
	}{
		{name: "no max_wait_ms"},
		{name: "max_wait_ms longer than the deadline", maxWait: ms(10_000)},
	}
	for _, tt := range tests {
		const left = 1500 * time.Millisecond
		began := time.Now()
		deadline := began.Add(left)
		res := e.admit(t, admission.Request{APIKey: f.key, Model: "gpt-4o", MaxWaitMs: tt.maxWait, DeadlineMs: deadline.UnixMilli()})
		answered := time.Now()
		wantError(t, res, 429, admission.ReasonUserConcurrency, "openai", "rate_limit_error",
			"Concurrency limit exceeded for user, please retry later")
		if !answered.Before(deadline) || answered.Sub(began) < left-admission.WaitMargin-100*time.Millisecond {
			t.Errorf("%s: answered %s after the start, want shortly before the deadline at %s", tt.name,
				answered.Sub(began), left)
		}
		if w := e.waiting(t, f.user); w != 0 {
			t.Errorf("%s: %d waiters left", tt.name, w)
		}
	}
}

// Work that runs into the deadline (here: the wallet load waits on a locked users table) stops
// before it and is answered in time; what it took is given back.
func TestAdmitWorkStopsAtTheDeadline(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedBillFixture(t, "openai", 10_000_000)
	tx, err := e.st.Pool.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(context.Background(), `LOCK TABLE users IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	const left = 1500 * time.Millisecond
	deadline := time.Now().Add(left)
	res := e.admit(t, admission.Request{RequestID: "req_locked", APIKey: f.key, Model: "gpt-4o", DeadlineMs: deadline.UnixMilli()})
	answered := time.Now()
	_ = tx.Rollback(context.Background())
	wantError(t, res, 504, admission.ReasonDeadline, "openai", "api_error", "Admission deadline passed, please retry")
	if !answered.Before(deadline) {
		t.Errorf("answered %s after the deadline", answered.Sub(deadline))
	}
	e.wantReleased(t, f, "req_locked")
}

// A grant that is ready only after its deadline, or whose caller leaves right when it is
// granted, is undone at once: slots, and the reservation of a first admission.
func TestAdmitLateOrUnreadGrantIsUndone(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// before runs between the grant and its answer; cancel ends the caller's request.
		before func(ctx context.Context, deadline time.Time, cancel context.CancelFunc)
		// wantStatus is the answer seen by the caller, 0 for none (it left).
		wantStatus int
	}{
		{
			name: "ready after the deadline",
			before: func(_ context.Context, deadline time.Time, _ context.CancelFunc) {
				time.Sleep(time.Until(deadline) + 50*time.Millisecond)
			},
			wantStatus: http.StatusGatewayTimeout,
		},
		{
			name: "caller left when granted",
			before: func(ctx context.Context, _ time.Time, cancel context.CancelFunc) {
				cancel()
				select { // the server notices the closed connection
				case <-ctx.Done():
				case <-time.After(5 * time.Second):
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			f := e.seedBillFixture(t, "openai", 10_000_000)
			deadline := time.Now().Add(2 * time.Second)
			callCtx, cancel := context.WithCancel(context.Background())
			defer cancel()
			e.svc.beforeAnswer = func(ctx context.Context) { tt.before(ctx, deadline, cancel) }
			status := e.admitWithContext(t, callCtx, admission.Request{RequestID: "req_late", APIKey: f.key,
				Model: "gpt-4o", DeadlineMs: deadline.UnixMilli()})
			if status != tt.wantStatus {
				t.Fatalf("caller saw %d, want %d", status, tt.wantStatus)
			}
			// The undoing runs before the handler returns, which may follow the caller's end;
			// the hold is released after the slots.
			waitUntil(t, 5*time.Second, func() bool {
				_, held := e.hold(t, f.user, "req_late")
				return e.count(t, slots.KindUser, f.user) == 0 && e.count(t, slots.KindAccount, f.account) == 0 && !held
			})
			e.wantReleased(t, f, "req_late")
		})
	}
}

// admitWithContext posts an admission under ctx and returns the status, 0 when the call
// ended without an answer.
func (e *env) admitWithContext(t *testing.T, ctx context.Context, req admission.Request) int {
	t.Helper()
	if req.Path == "" {
		req.Path = "/v1/responses"
	}
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	hr, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.url+"/internal/v1/admit", bytes.NewReader(body))
	hr.Header.Set(SecretHeader, testSecret)
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	return resp.StatusCode
}

func waitUntil(t *testing.T, bound time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", bound)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
