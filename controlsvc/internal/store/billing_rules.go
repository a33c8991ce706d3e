package store

import (
	"math"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/billing"
)

// The billing rules a reservation is checked by (docs/billing.md, "Reserve, then settle").

// check applies the rules of docs/billing.md in their order and returns what to hold:
// want, or less when less is available (balance less reservations, each limited
// subscription window's room, the key quota's rest). A request is refused only when less
// than need (its input estimate) is available, so one request at a time may be
// under-reserved (docs/billing.md, "Reservations"); nil refusal = admitted.
func (r *reserveRows) check(need, want int64, now time.Time, loc *time.Location) (int64, *BillingRefusal) {
	if r.keyExpires != nil && !now.Before(*r.keyExpires) {
		return 0, &BillingRefusal{Kind: RefuseKeyExpired, Message: MsgKeyExpired}
	}
	avail := want
	if r.mode == BillingSubscription {
		room, refusal := r.checkSubscription(need, now, loc)
		if refusal != nil {
			return 0, refusal
		}
		avail = min(avail, room)
	} else {
		room := r.balance - r.reserved
		if r.balance <= 0 || room < need {
			return 0, &BillingRefusal{Kind: RefuseInsufficientBalance, Message: MsgInsufficientBalance, AvailableMicros: max(room, 0)}
		}
		avail = min(avail, room)
	}
	if r.quota != nil {
		room := *r.quota - r.quotaUsed - r.quotaRe
		if r.quotaUsed >= *r.quota || room < need {
			return 0, &BillingRefusal{Kind: RefuseKeyQuota, Message: MsgKeyQuota, AvailableMicros: max(room, 0)}
		}
		avail = min(avail, room)
	}
	return max(avail, 0), nil
}

// checkSubscription refuses when no subscription is in force, or names the exhausted
// window that ends last (the client must wait for every exhausted window); room is the
// least any limited window has left (math.MaxInt64 without limits).
func (r *reserveRows) checkSubscription(need int64, now time.Time, loc *time.Location) (int64, *BillingRefusal) {
	if r.sub == nil {
		return 0, &BillingRefusal{Kind: RefuseNoSubscription, Message: MsgNoSubscription}
	}
	windows := r.sub.windows(now, loc)
	exhausted := -1
	room := int64(math.MaxInt64)
	for i, limit := range r.limits {
		if limit == nil {
			continue
		}
		used := billing.UsedNow(r.sub.used[i], r.sub.starts[i], windows[i])
		left := *limit - used - r.sub.reserved
		if used >= *limit || left < need {
			if exhausted < 0 || windows[i].End.After(windows[exhausted].End) {
				exhausted = i
			}
		}
		room = min(room, left)
	}
	if exhausted < 0 {
		return room, nil
	}
	return 0, &BillingRefusal{Kind: RefuseWindowExhausted, Message: windowMessages[billingWindowNames[exhausted]],
		Window: billingWindowNames[exhausted], RetryAfterSeconds: retryAfterSeconds(windows[exhausted].End.Sub(now))}
}

// retryAfterSeconds is d in whole seconds, rounded up, at least 1.
func retryAfterSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	return max(s, 1)
}
