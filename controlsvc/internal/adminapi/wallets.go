package adminapi

import (
	"context"

	"github.com/poolgate/poolgate/controlsvc/internal/holds"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// WalletInvalidator drops Redis copies of money after an admin change in PostgreSQL, the
// source of truth (package holds): exactly the user's balance and the named keys' and
// groups' wallets, never a global flush. The holds of requests in flight stay.
type WalletInvalidator interface {
	Invalidate(ctx context.Context, userID int64, keyIDs, groupIDs []int64) error
	// HeldOn is what the holds keep on each wallet (the views' reserved amounts).
	HeldOn(ctx context.Context, ws []holds.Wallet) ([]int64, error)
}

// invalidateWallets tells admission to reload a user's wallets after a committed change; a
// failure is logged: the copies reload by themselves within their refresh (docs/billing.md).
func (a *API) invalidateWallets(ctx context.Context, userID int64, keyIDs, groupIDs []int64) {
	if a.wallets == nil {
		return
	}
	if err := a.wallets.Invalidate(context.WithoutCancel(ctx), userID, keyIDs, groupIDs); err != nil {
		a.log.Warn("invalidating wallet copies", "user_id", userID, "error", err)
	}
}

// The store writes that change money admission checks, each followed by its invalidation.

func (a *API) adjustBalanceAndInvalidate(ctx context.Context, userID, amount int64, note string) (store.User, error) {
	u, err := a.st.AdjustBalance(ctx, userID, amount, note)
	if err == nil {
		a.invalidateWallets(ctx, userID, nil, nil)
		u = a.withHeldUsers(ctx, []store.User{u})[0]
	}
	return u, err
}

func (a *API) subscriptionChanged(ctx context.Context, s store.Subscription, err error) (store.Subscription, error) {
	if err == nil {
		a.invalidateWallets(ctx, s.UserID, nil, []int64{s.GroupID})
		s = a.withHeldSubscriptions(ctx, []store.Subscription{s})[0]
	}
	return s, err
}

func (a *API) createSubscriptionAndInvalidate(ctx context.Context, n store.NewSubscription) (store.Subscription, error) {
	s, err := a.st.CreateSubscription(ctx, n)
	return a.subscriptionChanged(ctx, s, err)
}

func (a *API) updateSubscriptionAndInvalidate(ctx context.Context, id int64, p store.SubscriptionPatch) (store.Subscription, error) {
	s, err := a.st.UpdateSubscription(ctx, id, p)
	return a.subscriptionChanged(ctx, s, err)
}

func (a *API) cancelSubscriptionAndInvalidate(ctx context.Context, id int64) (store.Subscription, error) {
	s, err := a.st.CancelSubscription(ctx, id)
	return a.subscriptionChanged(ctx, s, err)
}

func (a *API) updateUserAndInvalidate(ctx context.Context, id int64, p store.UserPatch) (store.User, error) {
	u, err := a.st.UpdateUser(ctx, id, p)
	if err != nil {
		return u, err
	}
	a.invalidateWallets(ctx, id, nil, nil) // the patch may set balance_usd
	return a.withHeldUsers(ctx, []store.User{u})[0], nil
}

func (a *API) updateAPIKeyAndInvalidate(ctx context.Context, id int64, p store.APIKeyPatch) (store.APIKey, error) {
	k, err := a.st.UpdateAPIKey(ctx, id, p)
	if err == nil {
		a.invalidateWallets(ctx, k.UserID, []int64{k.ID}, nil)
		k = a.withHeldKeys(ctx, []store.APIKey{k})[0]
	}
	return k, err
}

// heldOn is what the Redis holds keep on ws (0 each without Wallets); a failure counts 0
// and is logged: an admin view must not fail for the sake of a figure in flight.
func (a *API) heldOn(ctx context.Context, ws []holds.Wallet) []int64 {
	if a.wallets == nil {
		return make([]int64, len(ws))
	}
	out, err := a.wallets.HeldOn(ctx, ws)
	if err != nil {
		a.log.Warn("reading held amounts", "error", err)
		return make([]int64, len(ws))
	}
	return out
}

// The admin views' reserved amounts are the Redis holds (the store reads them as 0).

func (a *API) withHeldUsers(ctx context.Context, us []store.User) []store.User {
	ws := make([]holds.Wallet, len(us))
	for i, u := range us {
		ws[i] = holds.Wallet{UserID: u.ID, Kind: "bal"}
	}
	for i, v := range a.heldOn(ctx, ws) {
		us[i].ReservedMicros = v
	}
	return us
}

func (a *API) withHeldKeys(ctx context.Context, ks []store.APIKey) []store.APIKey {
	ws := make([]holds.Wallet, len(ks))
	for i, k := range ks {
		ws[i] = holds.Wallet{UserID: k.UserID, Kind: "k", ID: k.ID}
	}
	for i, v := range a.heldOn(ctx, ws) {
		if ks[i].QuotaMicros != nil {
			ks[i].QuotaReservedMicros = v
		}
	}
	return ks
}

func (a *API) withHeldSubscriptions(ctx context.Context, ss []store.Subscription) []store.Subscription {
	ws := make([]holds.Wallet, len(ss))
	for i, s := range ss {
		ws[i] = holds.Wallet{UserID: s.UserID, Kind: "g", ID: s.GroupID, SubscriptionID: s.ID}
	}
	for i, v := range a.heldOn(ctx, ws) {
		ss[i].ReservedMicros = v
	}
	return ss
}

// heldOne wraps a store read or write of one row so that its view shows the Redis holds.
func heldOne[T any](with func(context.Context, []T) []T, f func(context.Context, int64) (T, error)) func(context.Context, int64) (T, error) {
	return func(ctx context.Context, id int64) (T, error) {
		v, err := f(ctx, id)
		if err != nil {
			return v, err
		}
		return with(ctx, []T{v})[0], nil
	}
}

// withHeldKeyUsage adds the Redis holds to a key's usage (GET /v1/usage): on the key's
// quota, the balance and the subscription in force, in one round trip.
func (a *API) withHeldKeyUsage(ctx context.Context, k *store.KeyUsage) {
	ws := []holds.Wallet{{UserID: k.UserID, Kind: "k", ID: k.KeyID}, {UserID: k.UserID, Kind: "bal"}}
	if k.Subscription != nil {
		ws = append(ws, holds.Wallet{UserID: k.UserID, Kind: "g", ID: k.GroupID, SubscriptionID: k.Subscription.ID})
	}
	held := a.heldOn(ctx, ws)
	if k.QuotaMicros != nil {
		k.QuotaReservedMicros = held[0]
	}
	k.ReservedMicros = held[1]
	if k.Subscription != nil {
		k.Subscription.ReservedMicros = held[2]
	}
}
