package adminapi

import (
	"fmt"
	"net/http"

	"github.com/poolgate/poolgate/controlsvc/internal/slots"
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
	userCounts, userWaits, err := a.loads(r, slots.KindUser, userIDs)
	if err != nil {
		writeError(w, r, err)
		return
	}
	accountCounts, accountWaits, err := a.loads(r, slots.KindAccount, accountIDs)
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

// loads returns live slots and waiters per id.
func (a *API) loads(r *http.Request, kind string, ids []int64) (active, waiting map[int64]int64, err error) {
	if len(ids) == 0 {
		return nil, nil, nil
	}
	l, err := a.slots.Loads(r.Context(), kind, ids)
	if err != nil {
		return nil, nil, fmt.Errorf("counting %s slots: %w", kind, err)
	}
	active, waiting = make(map[int64]int64, len(l)), make(map[int64]int64, len(l))
	for id, v := range l {
		active[id], waiting[id] = v.Active, v.Waiting
	}
	return active, waiting, nil
}
