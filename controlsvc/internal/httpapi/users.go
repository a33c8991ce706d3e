package httpapi

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// defaultUserConcurrency matches the column default of users.concurrency.
const defaultUserConcurrency = 5

type userView struct {
	ID          int64       `json:"id"`
	Name        string      `json:"name"`
	Concurrency int         `json:"concurrency"`
	BalanceUSD  json.Number `json:"balance_usd"`
	// ReservedUSD is held by the user's requests in flight; AvailableUSD = balance - reserved
	// is what admission can still spend.
	ReservedUSD  json.Number `json:"reserved_usd"`
	AvailableUSD json.Number `json:"available_usd"`
	Status       string      `json:"status"`
	CreatedAt    time.Time   `json:"created_at"`
	UpdatedAt    time.Time   `json:"updated_at"`
}

func newUserView(u store.User) userView {
	return userView{
		ID: u.ID, Name: u.Name, Concurrency: u.Concurrency, BalanceUSD: formatMicros(u.BalanceMicros),
		ReservedUSD: formatMicros(u.ReservedMicros), AvailableUSD: formatMicros(u.BalanceMicros - u.ReservedMicros),
		Status: u.Status, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt,
	}
}

// userInput is the body of POST and PATCH /users; absent fields are nil.
type userInput struct {
	Name        *string          `json:"name"`
	Concurrency *int             `json:"concurrency"`
	BalanceUSD  *json.RawMessage `json:"balance_usd"`
	Status      *string          `json:"status"`
}

// patch validates the input; on create the name is required.
func (in *userInput) patch(create bool) (store.UserPatch, error) {
	p := store.UserPatch{Name: in.Name, Concurrency: in.Concurrency, Status: in.Status}
	if err := checkName("name", in.Name, create); err != nil {
		return p, err
	}
	if err := checkConcurrency(in.Concurrency); err != nil {
		return p, err
	}
	if err := checkEnum("status", in.Status, statuses); err != nil {
		return p, err
	}
	if in.BalanceUSD != nil {
		v, err := parseUSD("balance_usd", *in.BalanceUSD)
		if err != nil {
			return p, err
		}
		p.BalanceMicros = &v
	}
	return p, nil
}

func (a *API) createUser(w http.ResponseWriter, r *http.Request) {
	var in userInput
	if err := decodeBody(w, r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	p, err := in.patch(true)
	if err != nil {
		writeError(w, r, err)
		return
	}
	u := store.User{Name: *p.Name, Concurrency: defaultUserConcurrency, Status: "active"}
	if p.Concurrency != nil {
		u.Concurrency = *p.Concurrency
	}
	if p.BalanceMicros != nil {
		u.BalanceMicros = *p.BalanceMicros
	}
	if p.Status != nil {
		u.Status = *p.Status
	}
	created, err := a.st.CreateUser(r.Context(), u)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, newUserView(created))
}

func (a *API) listUsers(w http.ResponseWriter, r *http.Request) {
	users, err := a.st.ListUsers(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	views := make([]userView, 0, len(users))
	for _, u := range users {
		views = append(views, newUserView(u))
	}
	writeList(w, views)
}

func (a *API) getUser(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	u, err := a.st.GetUser(r.Context(), id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newUserView(u))
}

func (a *API) patchUser(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var in userInput
	if err := decodeBody(w, r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	p, err := in.patch(false)
	if err != nil {
		writeError(w, r, err)
		return
	}
	u, err := a.st.UpdateUser(r.Context(), id, p)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newUserView(u))
}
