package httpapi

import (
	"fmt"
	"net/http"
)

// Slot kinds understood by SlotCounter.
const (
	kindUser    = "user"
	kindAccount = "account"
)

type userLoad struct {
	UserID  int64 `json:"user_id"`
	Active  int64 `json:"active"`
	Waiting int64 `json:"waiting"` // no wait queue yet: always 0
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
	userCounts, err := a.counts(r, kindUser, userIDs)
	if err != nil {
		writeError(w, r, err)
		return
	}
	accountCounts, err := a.counts(r, kindAccount, accountIDs)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := concurrencyView{
		Users:    make([]userLoad, 0, len(userIDs)),
		Accounts: make([]accountLoad, 0, len(accountIDs)),
	}
	for _, id := range userIDs {
		out.Users = append(out.Users, userLoad{UserID: id, Active: userCounts[id]})
	}
	for _, id := range accountIDs {
		out.Accounts = append(out.Accounts, accountLoad{AccountID: id, Active: accountCounts[id]})
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
