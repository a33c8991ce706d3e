package adminapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/poolgate/poolgate/controlsvc/internal/changes"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// A user's own rate multiplier in a group: PUT/DELETE /users/{id}/group-rates/{group_id},
// GET /users/{id}/group-rates. It overrides the group's rate_multiplier for that user.

type userGroupRateView struct {
	UserID         int64       `json:"user_id"`
	GroupID        int64       `json:"group_id"`
	RateMultiplier json.Number `json:"rate_multiplier"`
	CreatedAt      time.Time   `json:"created_at"`
	UpdatedAt      time.Time   `json:"updated_at"`
}

func newUserGroupRateView(r store.UserGroupRate) (userGroupRateView, error) {
	rate, err := decimalTextToMicros(r.RateMultiplier)
	if err != nil {
		return userGroupRateView{}, err
	}
	return userGroupRateView{UserID: r.UserID, GroupID: r.GroupID, RateMultiplier: formatMicros(rate),
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}, nil
}

type userGroupRateInput struct {
	RateMultiplier *json.RawMessage `json:"rate_multiplier"`
}

// pathUserGroup is the {id} of the user and the {group_id} of the route.
func pathUserGroup(r *http.Request) (userID, groupID int64, err error) {
	if userID, err = pathID(r); err != nil {
		return 0, 0, err
	}
	raw := mux.Vars(r)["group_id"]
	groupID, err = strconv.ParseInt(raw, 10, 64)
	if err != nil || groupID <= 0 {
		return 0, 0, &requestError{status: http.StatusNotFound, typ: typeNotFound, message: "no group with id " + strconv.Quote(raw)}
	}
	return userID, groupID, nil
}

func (a *API) putUserGroupRate(w http.ResponseWriter, r *http.Request) {
	userID, groupID, err := pathUserGroup(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var in userGroupRateInput
	if err := decodeBody(w, r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	if in.RateMultiplier == nil {
		writeError(w, r, invalid("rate_multiplier is required"))
		return
	}
	rate, err := parseRateMultiplier(*in.RateMultiplier)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out, err := a.st.SetUserGroupRate(r.Context(), userID, groupID, rate)
	if err != nil {
		writeError(w, r, err)
		return
	}
	a.publish(r.Context(), changes.Event{Kind: changes.User, ID: userID})
	writeView(w, r, http.StatusOK, out, newUserGroupRateView)
}

func (a *API) deleteUserGroupRate(w http.ResponseWriter, r *http.Request) {
	userID, groupID, err := pathUserGroup(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := a.st.DeleteUserGroupRate(r.Context(), userID, groupID); err != nil {
		writeError(w, r, err)
		return
	}
	a.publish(r.Context(), changes.Event{Kind: changes.User, ID: userID})
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) listUserGroupRates(w http.ResponseWriter, r *http.Request) {
	userID, err := pathID(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	p, err := readPage(r.URL.Query(), 1) // the cursor is the group id
	if err != nil {
		writeError(w, r, err)
		return
	}
	rates, err := a.st.ListUserGroupRates(r.Context(), userID, p)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writePage(w, r, p, rates, func(g store.UserGroupRate) []int64 { return []int64{g.GroupID} }, newUserGroupRateView)
}
