package adminapi

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/billing"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// Subscriptions of users to subscription-mode groups: POST/GET /subscriptions,
// GET/PATCH/DELETE /subscriptions/{id} (DELETE cancels).

// maxSubscriptionDays bounds duration_days: a hundred years.
const maxSubscriptionDays = 36500

var subscriptionStatuses = []string{store.SubscriptionActive, store.SubscriptionCancelled}

type adminSubscriptionView struct {
	ID        int64     `json:"id"`
	UserID    int64     `json:"user_id"`
	GroupID   int64     `json:"group_id"`
	StartsAt  time.Time `json:"starts_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Status    string    `json:"status"`
	// State is the status at the time of reading: active (serving requests now), scheduled
	// (starts later), expired or cancelled.
	State       string                  `json:"state"`
	Note        string                  `json:"note"`
	ReservedUSD json.Number             `json:"reserved_usd"`
	Windows     subscriptionWindowsView `json:"windows"`
	CreatedAt   time.Time               `json:"created_at"`
	UpdatedAt   time.Time               `json:"updated_at"`
}

type subscriptionWindowsView struct {
	Daily   subscriptionWindowView `json:"daily"`
	Weekly  subscriptionWindowView `json:"weekly"`
	Monthly subscriptionWindowView `json:"monthly"`
}

// subscriptionWindowView is one current window: what was used in it, the group's limit
// (null = unlimited), what is left after the reservations in flight, and its bounds.
type subscriptionWindowView struct {
	UsedUSD      json.Number  `json:"used_usd"`
	LimitUSD     *json.Number `json:"limit_usd"`
	RemainingUSD *json.Number `json:"remaining_usd"` // limit − used − reserved, at least 0; null: unlimited
	WindowStart  time.Time    `json:"window_start"`
	WindowEnd    time.Time    `json:"window_end"`
}

func newAdminSubscriptionView(s store.Subscription, now time.Time, loc *time.Location) adminSubscriptionView {
	state := s.Status
	switch {
	case s.Status != store.SubscriptionActive:
	case now.Before(s.StartsAt):
		state = "scheduled"
	case !now.Before(s.ExpiresAt):
		state = "expired"
	}
	usage := s.Usage(now, loc)
	window := func(u store.WindowUsage) subscriptionWindowView {
		v := subscriptionWindowView{UsedUSD: formatMicros(u.UsedMicros), LimitUSD: optionalUSD(u.LimitMicros),
			WindowStart: u.Window.Start.UTC(), WindowEnd: u.Window.End.UTC()}
		if u.LimitMicros != nil {
			rem := formatMicros(max(0, *u.LimitMicros-u.UsedMicros-s.ReservedMicros))
			v.RemainingUSD = &rem
		}
		return v
	}
	return adminSubscriptionView{
		ID: s.ID, UserID: s.UserID, GroupID: s.GroupID, StartsAt: s.StartsAt.UTC(), ExpiresAt: s.ExpiresAt.UTC(),
		Status: s.Status, State: state, Note: s.Note, ReservedUSD: formatMicros(s.ReservedMicros),
		Windows:   subscriptionWindowsView{Daily: window(usage[0]), Weekly: window(usage[1]), Monthly: window(usage[2])},
		CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt,
	}
}

// subscriptionViewNow shows one subscription as of the moment it is written.
func subscriptionViewNow(s store.Subscription) (adminSubscriptionView, error) {
	return newAdminSubscriptionView(s, time.Now(), billing.Location()), nil
}

// subscriptionInput is the body of POST and PATCH /subscriptions.
type subscriptionInput struct {
	UserID       *int64           `json:"user_id"`
	GroupID      *int64           `json:"group_id"`
	StartsAt     *json.RawMessage `json:"starts_at"`
	ExpiresAt    *json.RawMessage `json:"expires_at"`
	DurationDays *int             `json:"duration_days"`
	Status       *string          `json:"status"`
	Note         *string          `json:"note"`
}

func (in *subscriptionInput) create(now time.Time) (store.NewSubscription, error) {
	var n store.NewSubscription
	switch {
	case in.UserID == nil || *in.UserID <= 0:
		return n, invalid("user_id is required and must be a positive integer")
	case in.GroupID == nil || *in.GroupID <= 0:
		return n, invalid("group_id is required and must be a positive integer")
	case in.Status != nil:
		return n, invalid("status cannot be set on creation; a new subscription is active")
	case (in.ExpiresAt == nil) == (in.DurationDays == nil):
		return n, invalid("give exactly one of expires_at (RFC 3339) and duration_days")
	}
	n.UserID, n.GroupID, n.StartsAt = *in.UserID, *in.GroupID, now
	if in.StartsAt != nil {
		t, err := parseTimestamp("starts_at", *in.StartsAt)
		if err != nil {
			return n, err
		}
		n.StartsAt = t
	}
	if in.DurationDays != nil {
		if *in.DurationDays < 1 || *in.DurationDays > maxSubscriptionDays {
			return n, invalid("duration_days must be between 1 and %d", maxSubscriptionDays)
		}
		n.ExpiresAt = n.StartsAt.Add(time.Duration(*in.DurationDays) * 24 * time.Hour)
	} else {
		t, err := parseTimestamp("expires_at", *in.ExpiresAt)
		if err != nil {
			return n, err
		}
		n.ExpiresAt = t
	}
	if err := checkNote(in.Note, false); err != nil {
		return n, err
	}
	if in.Note != nil {
		n.Note = *in.Note
	}
	return n, nil
}

func (in *subscriptionInput) patch() (store.SubscriptionPatch, error) {
	p := store.SubscriptionPatch{Status: in.Status, Note: in.Note}
	switch {
	case in.UserID != nil || in.GroupID != nil:
		return p, invalid("user_id and group_id of a subscription cannot be changed; create a new one")
	case in.StartsAt != nil:
		return p, invalid("starts_at cannot be changed: the rolling windows count from it; create a new subscription")
	case in.DurationDays != nil:
		return p, invalid("duration_days is only for creation; send expires_at")
	}
	if err := checkEnum("status", in.Status, subscriptionStatuses); err != nil {
		return p, err
	}
	if err := checkNote(in.Note, false); err != nil {
		return p, err
	}
	if in.ExpiresAt != nil {
		t, err := parseTimestamp("expires_at", *in.ExpiresAt)
		if err != nil {
			return p, err
		}
		p.ExpiresAt = &t
	}
	return p, nil
}

func (a *API) createSubscription(w http.ResponseWriter, r *http.Request) {
	create := func(in *subscriptionInput) (store.NewSubscription, error) { return in.create(time.Now()) }
	serveCreate(w, r, create, a.publishedSubscriptionCreate(a.createSubscriptionAndInvalidate), subscriptionViewNow)
}

func (a *API) listSubscriptions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var f store.SubscriptionFilter
	var err error
	if f.UserID, err = queryID(q, "user_id"); err != nil {
		writeError(w, r, err)
		return
	}
	if f.GroupID, err = queryID(q, "group_id"); err != nil {
		writeError(w, r, err)
		return
	}
	if status := q.Get("status"); status != "" {
		if err := checkEnum("query parameter status", &status, subscriptionStatuses); err != nil {
			writeError(w, r, err)
			return
		}
		f.Status = status
	}
	p, err := readPage(q, 1)
	if err != nil {
		writeError(w, r, err)
		return
	}
	subs, err := a.st.ListSubscriptions(r.Context(), f, p)
	if err != nil {
		writeError(w, r, err)
		return
	}
	subs = a.withHeldSubscriptions(r.Context(), subs)
	// One moment for the whole list, so every state is as of the same time.
	now, loc := time.Now(), billing.Location()
	writePage(w, r, p, subs, func(s store.Subscription) []int64 { return []int64{s.ID} }, infallible(func(s store.Subscription) adminSubscriptionView {
		return newAdminSubscriptionView(s, now, loc)
	}))
}

func (a *API) getSubscription(w http.ResponseWriter, r *http.Request) {
	serveByID(w, r, heldOne(a.withHeldSubscriptions, a.st.GetSubscription), subscriptionViewNow)
}

func (a *API) patchSubscription(w http.ResponseWriter, r *http.Request) {
	servePatch(w, r, (*subscriptionInput).patch, a.publishedSubscriptionUpdate(a.updateSubscriptionAndInvalidate), subscriptionViewNow)
}

// cancelSubscription answers DELETE: the subscription stays, cancelled, for its history.
func (a *API) cancelSubscription(w http.ResponseWriter, r *http.Request) {
	serveByID(w, r, a.publishedSubscriptionCancel(a.cancelSubscriptionAndInvalidate), subscriptionViewNow)
}
