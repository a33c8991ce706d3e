package adminapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/poolgate/poolgate/controlsvc/internal/changes"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// Balance adjustments: POST /users/{id}/balance adds a signed amount with a note (audited in
// balance_adjustments); GET /users/{id}/balance-adjustments lists them, newest first.

const maxNoteLen = 1000

type balanceInput struct {
	AmountUSD *json.RawMessage `json:"amount_usd"`
	Note      *string          `json:"note"`
}

type adjustmentView struct {
	ID              int64       `json:"id"`
	UserID          int64       `json:"user_id"`
	AmountUSD       json.Number `json:"amount_usd"`
	BalanceAfterUSD json.Number `json:"balance_after_usd"`
	Note            string      `json:"note"`
	CreatedAt       time.Time   `json:"created_at"`
}

func newAdjustmentView(a store.BalanceAdjustment) adjustmentView {
	return adjustmentView{ID: a.ID, UserID: a.UserID, AmountUSD: formatMicros(a.AmountMicros),
		BalanceAfterUSD: formatMicros(a.BalanceAfterMicros), Note: a.Note, CreatedAt: a.CreatedAt}
}

// checkNote requires a non-empty note of at most maxNoteLen characters.
func checkNote(v *string, required bool) error {
	if v == nil {
		if required {
			return invalid("note is required: say why the balance changes")
		}
		return nil
	}
	*v = strings.TrimSpace(*v)
	if required && *v == "" {
		return invalid("note must not be empty: say why the balance changes")
	}
	if utf8.RuneCountInString(*v) > maxNoteLen {
		return invalid("note must be at most %d characters", maxNoteLen)
	}
	return nil
}

func (a *API) adjustBalance(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var in balanceInput
	if err := decodeBody(w, r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	amount, err := in.amount()
	if err == nil {
		err = checkNote(in.Note, true)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	u, err := a.adjustBalanceAndInvalidate(r.Context(), id, amount, *in.Note)
	if err != nil {
		writeError(w, r, err)
		return
	}
	a.publish(r.Context(), changes.Event{Kind: changes.User, ID: id})
	writeJSON(w, http.StatusOK, newUserView(u))
}

// amount reads the signed, non-zero amount_usd.
func (in *balanceInput) amount() (int64, error) {
	if in.AmountUSD == nil {
		return 0, invalid("amount_usd is required: a positive amount credits the balance, a negative one debits it")
	}
	v, err := parseMicros(*in.AmountUSD)
	if err != nil {
		return 0, invalid("amount_usd %v", err)
	}
	if v == 0 {
		return 0, invalid("amount_usd must not be 0")
	}
	return v, nil
}

func (a *API) listBalanceAdjustments(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	before, err := queryID(q, "before_id")
	if err != nil {
		writeError(w, r, err)
		return
	}
	p, err := readPage(q, 1) // newest first: the cursor is the last id, the next page is before it
	if err != nil {
		writeError(w, r, err)
		return
	}
	if len(p.After) == 1 {
		before = p.After[0]
	}
	list, err := a.st.ListBalanceAdjustments(r.Context(), id, before, p.Limit+1)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writePage(w, r, p, list, func(b store.BalanceAdjustment) []int64 { return []int64{b.ID} }, infallible(newAdjustmentView))
}
