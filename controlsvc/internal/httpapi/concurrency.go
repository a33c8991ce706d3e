package httpapi

import (
	"context"
	"fmt"
	"net/http"

	"github.com/poolgate/poolgate/controlsvc/internal/slots"
)

// loadReader is what a SlotCounter offers when it also knows the wait queues.
type loadReader interface {
	Loads(ctx context.Context, kind string, ids []int64) (map[int64]slots.Load, error)
}

// Slot kinds understood by SlotCounter.
const (
	kindUser    = "user"
	kindAccount = "account"
)

type userLoad struct {
	UserID  int64 `json:"user_id"`
	Active  int64 `json:"active"`
	Waiting int64 `json:"waiting"`
}

type accountLoad struct {
	AccountID int64 `json:"account_id"`
	Active    int64 `json:"active"`
	Waiting   int64 `json:"waiting"`
}

type concurrencyView struct {
	Users    []userLoad    `json:"users"`
	Accounts []accountLoad `json:"accounts"`
}

// concurrency lists live slot counts of every user and every account not deleted, so
// operators and tests can see leaked slots.
func (a *API) concurrency(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	userIDs, err := a.st.UserIDs(ctx)
	if err != nil {
		writeError(w, r, err)
		return
	}
	accountIDs, err := a.st.AccountIDs(ctx)
	if err != nil {
		writeError(w, r, err)
		return
	}
	userCounts, userWaits, err := a.loads(r, kindUser, userIDs)
	if err != nil {
		writeError(w, r, err)
		return
	}
	accountCounts, accountWaits, err := a.loads(r, kindAccount, accountIDs)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := concurrencyView{
		Users:    make([]userLoad, 0, len(userIDs)),
		Accounts: make([]accountLoad, 0, len(accountIDs)),
	}
	for _, id := range userIDs {
		out.Users = append(out.Users, userLoad{UserID: id, Active: userCounts[id], Waiting: userWaits[id]})
	}
	for _, id := range accountIDs {
		out.Accounts = append(out.Accounts, accountLoad{AccountID: id, Active: accountCounts[id], Waiting: accountWaits[id]})
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) counts(r *http.Request, kind string, ids []int64) (map[int64]int64, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	c, err := a.slots.Counts(r.Context(), kind, ids)
	if err != nil {
		return nil, fmt.Errorf("counting %s slots: %w", kind, err)
	}
	return c, nil
}

// loads returns live slots and waiters per id; waiters are 0 when the counter knows no queues.
func (a *API) loads(r *http.Request, kind string, ids []int64) (active, waiting map[int64]int64, err error) {
	lr, ok := a.slots.(loadReader)
	if !ok || len(ids) == 0 {
		active, err = a.counts(r, kind, ids)
		return active, nil, err
	}
	l, err := lr.Loads(r.Context(), kind, ids)
	if err != nil {
		return nil, nil, fmt.Errorf("counting %s slots: %w", kind, err)
	}
	active, waiting = make(map[int64]int64, len(l)), make(map[int64]int64, len(l))
	for id, v := range l {
		active[id], waiting[id] = v.Active, v.Waiting
	}
	return active, waiting, nil
}
