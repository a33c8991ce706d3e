package store

import (
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poolgate/poolgate/controlsvc/internal/billing"
)

// Reserve, then settle (docs/billing.md): the holds live in Redis (package holds); this
// file has the refusals they answer with, and the subscription usage settlement charges.

// RefusalKind says which billing rule refused an admission.
type RefusalKind string

// Refusals, in the order they are checked; docs/billing.md maps them to client errors.
const (
	RefuseKeyExpired          RefusalKind = "key_expired"          // 403 permission_error
	RefuseInsufficientBalance RefusalKind = "insufficient_balance" // 403 billing_error
	RefuseNoSubscription      RefusalKind = "no_subscription"      // 403 billing_error
	RefuseWindowExhausted     RefusalKind = "window_exhausted"     // 429 rate_limit_exceeded + Retry-After
	RefuseKeyQuota            RefusalKind = "key_quota_exhausted"  // 429 insufficient_quota
)

// BillingRefusal is an admission refused by a billing rule.
type BillingRefusal struct {
	Kind    RefusalKind
	Message string // the client-facing message of docs/billing.md
	// Window names the exhausted window (billing.Daily, Weekly, Monthly) and
	// RetryAfterSeconds is the time to its end, rounded up; RefuseWindowExhausted only.
	Window            string
	RetryAfterSeconds int64
	// AvailableMicros is what the refusing rule left (balance less reservations, quota
	// left); RefuseInsufficientBalance and RefuseKeyQuota only.
	AvailableMicros int64
}

// Client-facing messages of the refusals.
const (
	MsgKeyExpired          = "API key has expired"
	MsgInsufficientBalance = "Insufficient account balance"
	MsgNoSubscription      = "No active subscription found for this group"
	MsgKeyQuota            = "API key quota exhausted"
)

// ErrReservationMismatch means a request id already holds a reservation of another user,
// key or group: request ids are unique per client request, so this is a caller bug.
var ErrReservationMismatch = errors.New("request id already reserved for another user, key or group")

// subscriptionUsage is a subscription's window usage as stored.
type subscriptionUsage struct {
	id       int64
	startsAt time.Time
	starts   [3]*time.Time // daily, weekly, monthly window starts
	used     [3]int64
}

// windows are the current windows in the order of subscriptionUsage's arrays.
func (s *subscriptionUsage) windows(now time.Time, loc *time.Location) [3]billing.Window {
	w := billing.CurrentWindows(s.startsAt, now, loc)
	return [3]billing.Window{w.Daily, w.Weekly, w.Monthly}
}

var billingWindowNames = [3]string{billing.Daily, billing.Weekly, billing.Monthly}

// rowFound turns pgx.ErrNoRows into false.
func rowFound(err error) (bool, error) {
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}
