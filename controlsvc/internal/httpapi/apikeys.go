package httpapi

import (
	"net/http"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

type apiKeyView struct {
	ID         int64      `json:"id"`
	UserID     int64      `json:"user_id"`
	GroupID    int64      `json:"group_id"`
	Name       string     `json:"name"`
	KeyPrefix  string     `json:"key_prefix"`
	Status     string     `json:"status"`
	LastUsedAt *time.Time `json:"last_used_at"`
	CreatedAt  time.Time  `json:"created_at"`
	// Key is the full key, set only in the create response: it is not stored.
	Key string `json:"key,omitempty"`
}

func newAPIKeyView(k store.APIKey) apiKeyView {
	return apiKeyView{
		ID: k.ID, UserID: k.UserID, GroupID: k.GroupID, Name: k.Name, KeyPrefix: k.KeyPrefix,
		Status: k.Status, LastUsedAt: k.LastUsedAt, CreatedAt: k.CreatedAt,
	}
}

type apiKeyInput struct {
	UserID  *int64  `json:"user_id"`
	GroupID *int64  `json:"group_id"`
	Name    *string `json:"name"`
}

func (a *API) createAPIKey(w http.ResponseWriter, r *http.Request) {
	var in apiKeyInput
	if err := decodeBody(w, r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	name := ""
	var err error
	switch {
	case in.UserID == nil || *in.UserID <= 0:
		err = invalid("user_id is required and must be a positive integer")
	case in.GroupID == nil || *in.GroupID <= 0:
		err = invalid("group_id is required and must be a positive integer")
	case in.Name != nil:
		name = *in.Name
		err = checkLength("name", name)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	k, key, err := a.st.CreateAPIKey(r.Context(), *in.UserID, *in.GroupID, name)
	if err != nil {
		writeError(w, r, err)
		return
	}
	v := newAPIKeyView(k)
	v.Key = key
	writeJSON(w, http.StatusCreated, v)
}

func (a *API) listAPIKeys(w http.ResponseWriter, r *http.Request) {
	userID, err := queryID(r.URL.Query(), "user_id")
	if err != nil {
		writeError(w, r, err)
		return
	}
	keys, err := a.st.ListAPIKeys(r.Context(), userID)
	if err != nil {
		writeError(w, r, err)
		return
	}
	views := make([]apiKeyView, 0, len(keys))
	for _, k := range keys {
		views = append(views, newAPIKeyView(k))
	}
	writeList(w, views)
}

func (a *API) deleteAPIKey(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := a.st.DeleteAPIKey(r.Context(), id); err != nil {
		writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
