package adminapi

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/changes"
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

// user validates a POST body into a new user; absent fields take the column defaults.
func (in *userInput) user() (store.User, error) {
	p, err := in.patch(true)
	if err != nil {
		return store.User{}, err
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
	return u, nil
}

func (a *API) createUser(w http.ResponseWriter, r *http.Request) {
	serveCreate(w, r, (*userInput).user, a.st.CreateUser, infallible(newUserView))
}

func (a *API) listUsers(w http.ResponseWriter, r *http.Request) {
	servePage(w, r, func(ctx context.Context, p store.Page) ([]store.User, error) {
		us, err := a.st.ListUsers(ctx, p)
		if err != nil {
			return nil, err
		}
		return a.withHeldUsers(ctx, us), nil
	}, func(u store.User) []int64 { return []int64{u.ID} }, infallible(newUserView))
}

func (a *API) getUser(w http.ResponseWriter, r *http.Request) {
	serveByID(w, r, heldOne(a.withHeldUsers, a.st.GetUser), infallible(newUserView))
}

func (a *API) patchUser(w http.ResponseWriter, r *http.Request) {
	update := func(in *userInput) (store.UserPatch, error) { return in.patch(false) }
	servePatch(w, r, update, publishedUpdate(a, changes.User, a.updateUserAndInvalidate), infallible(newUserView))
	a.keyUsages.forgetUnknown() // the user's keys may be usable again
}
