package adminapi

import (
	"context"

	"github.com/poolgate/poolgate/controlsvc/internal/changes"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// The admin API tells every controlsvc instance which entity a stored write changed
// (package changes), so that admission drops exactly those cache entries. Without a bus
// (Options.Changes nil, in tests) it tells this process's notifiers as before.

// publish announces events after their write is stored. A failed publish does not fail
// the write: the other instances follow within their caches' TTL.
func (a *API) publish(ctx context.Context, events ...changes.Event) {
	if a.changes == nil {
		accounts, keys := false, false
		for _, e := range events {
			accounts = accounts || e.Kind == changes.Account || e.Kind == changes.Members
			keys = keys || e.Kind == changes.Key
		}
		if accounts {
			a.accountsChanged()
		}
		if keys {
			a.keyCreated()
		}
		return
	}
	if err := a.changes.Publish(ctx, events...); err != nil {
		a.log.Warn("publishing changes", "events", len(events), "error", err)
	}
}

// publishedUpdate is update followed by the change event of its entity.
func publishedUpdate[P, T any](a *API, kind changes.Kind, update func(context.Context, int64, P) (T, error)) func(context.Context, int64, P) (T, error) {
	return func(ctx context.Context, id int64, p P) (T, error) {
		v, err := update(ctx, id, p)
		if err == nil {
			a.publish(ctx, changes.Event{Kind: kind, ID: id})
		}
		return v, err
	}
}

// publishedDelete is del followed by the change event of its entity.
func publishedDelete(a *API, kind changes.Kind, del func(context.Context, int64) error) func(context.Context, int64) error {
	return func(ctx context.Context, id int64) error {
		err := del(ctx, id)
		if err == nil {
			a.publish(ctx, changes.Event{Kind: kind, ID: id})
		}
		return err
	}
}

// accountEvents are the events of a stored account: the account itself (lists that hold it)
// and each group it is in now (lists it may have joined).
func accountEvents(acc store.Account) []changes.Event {
	ev := []changes.Event{{Kind: changes.Account, ID: acc.ID}}
	for _, g := range acc.GroupIDs {
		ev = append(ev, changes.Event{Kind: changes.Members, ID: g})
	}
	return ev
}

// publishedAccountCreate and publishedAccountUpdate publish accountEvents of their result.
func publishedAccountCreate(a *API, create func(context.Context, store.NewAccount) (store.Account, error)) func(context.Context, store.NewAccount) (store.Account, error) {
	return func(ctx context.Context, n store.NewAccount) (store.Account, error) {
		acc, err := create(ctx, n)
		if err == nil {
			a.publish(ctx, accountEvents(acc)...)
		}
		return acc, err
	}
}

func publishedAccountUpdate(a *API, update func(context.Context, int64, store.AccountPatch) (store.Account, error)) func(context.Context, int64, store.AccountPatch) (store.Account, error) {
	return func(ctx context.Context, id int64, p store.AccountPatch) (store.Account, error) {
		acc, err := update(ctx, id, p)
		if err == nil {
			a.publish(ctx, accountEvents(acc)...)
		}
		return acc, err
	}
}

// A subscription's change is its user's: admission caches billing by user.
func (a *API) publishSubscription(ctx context.Context, sub store.Subscription) {
	a.publish(ctx, changes.Event{Kind: changes.User, ID: sub.UserID})
}

func (a *API) publishedSubscriptionCreate(create func(context.Context, store.NewSubscription) (store.Subscription, error)) func(context.Context, store.NewSubscription) (store.Subscription, error) {
	return func(ctx context.Context, n store.NewSubscription) (store.Subscription, error) {
		sub, err := create(ctx, n)
		if err == nil {
			a.publishSubscription(ctx, sub)
		}
		return sub, err
	}
}

func (a *API) publishedSubscriptionUpdate(update func(context.Context, int64, store.SubscriptionPatch) (store.Subscription, error)) func(context.Context, int64, store.SubscriptionPatch) (store.Subscription, error) {
	return func(ctx context.Context, id int64, p store.SubscriptionPatch) (store.Subscription, error) {
		sub, err := update(ctx, id, p)
		if err == nil {
			a.publishSubscription(ctx, sub)
		}
		return sub, err
	}
}

func (a *API) publishedSubscriptionCancel(cancel func(context.Context, int64) (store.Subscription, error)) func(context.Context, int64) (store.Subscription, error) {
	return func(ctx context.Context, id int64) (store.Subscription, error) {
		sub, err := cancel(ctx, id)
		if err == nil {
			a.publishSubscription(ctx, sub)
		}
		return sub, err
	}
}
