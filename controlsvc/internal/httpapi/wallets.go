package httpapi

import (
	"context"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// WalletInvalidator drops Redis copies of money after an admin change in PostgreSQL, the
// source of truth (package holds): exactly the user's balance and the named keys' and
// groups' wallets, never a global flush. The holds of requests in flight stay.
type WalletInvalidator interface {
	Invalidate(ctx context.Context, userID int64, keyIDs, groupIDs []int64) error
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
	}
	return u, err
}

func (a *API) subscriptionChanged(ctx context.Context, s store.Subscription, err error) (store.Subscription, error) {
	if err == nil {
		a.invalidateWallets(ctx, s.UserID, nil, []int64{s.GroupID})
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

func (a *API) updateAPIKeyAndInvalidate(ctx context.Context, id int64, p store.APIKeyPatch) (store.APIKey, error) {
	k, err := a.st.UpdateAPIKey(ctx, id, p)
	if err == nil {
		a.invalidateWallets(ctx, k.UserID, []int64{k.ID}, nil)
	}
	return k, err
}
