package adminapi

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/changes"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

type apiKeyView struct {
	ID        int64  `json:"id"`
	UserID    int64  `json:"user_id"`
	GroupID   int64  `json:"group_id"`
	Name      string `json:"name"`
	KeyPrefix string `json:"key_prefix"`
	Status    string `json:"status"`
	// QuotaUSD caps the key's spend (null = none); QuotaUsedUSD is what it spent while it had
	// a quota and QuotaReservedUSD what its requests in flight hold against the quota.
	QuotaUSD         *json.Number `json:"quota_usd"`
	QuotaUsedUSD     json.Number  `json:"quota_used_usd"`
	QuotaReservedUSD json.Number  `json:"quota_reserved_usd"`
	ExpiresAt        *time.Time   `json:"expires_at"`
	LastUsedAt       *time.Time   `json:"last_used_at"`
	CreatedAt        time.Time    `json:"created_at"`
	// Key is the full key, set only in the create response: it is not stored.
	Key string `json:"key,omitempty"`
}

func newAPIKeyView(k store.APIKey) apiKeyView {
	return apiKeyView{
		ID: k.ID, UserID: k.UserID, GroupID: k.GroupID, Name: k.Name, KeyPrefix: k.KeyPrefix,
		Status: k.Status, QuotaUSD: optionalUSD(k.QuotaMicros), QuotaUsedUSD: formatMicros(k.QuotaUsedMicros),
		QuotaReservedUSD: formatMicros(k.QuotaReservedMicros), ExpiresAt: utcPtr(k.ExpiresAt),
		LastUsedAt: k.LastUsedAt, CreatedAt: k.CreatedAt,
	}
}

// optionalUSD renders nullable micros.
func optionalUSD(v *int64) *json.Number {
	if v == nil {
		return nil
	}
	n := formatMicros(*v)
	return &n
}

// utcPtr shows a nullable time in UTC.
func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// apiKeyInput is the body of POST and PATCH /api-keys.
type apiKeyInput struct {
	UserID    *int64   `json:"user_id"`
	GroupID   *int64   `json:"group_id"`
	Name      *string  `json:"name"`
	Status    *string  `json:"status"`
	QuotaUSD  nullable `json:"quota_usd"`
	ExpiresAt nullable `json:"expires_at"`
}

// patch validates the fields that both POST and PATCH take.
func (in *apiKeyInput) patch() (store.APIKeyPatch, error) {
	p := store.APIKeyPatch{Name: in.Name, Status: in.Status}
	if in.Name != nil {
		if err := checkLength("name", *in.Name); err != nil {
			return p, err
		}
	}
	if err := checkEnum("status", in.Status, statuses); err != nil {
		return p, err
	}
	var err error
	if p.Quota, err = in.QuotaUSD.usd("quota_usd"); err != nil {
		return p, err
	}
	p.ExpiresAt, err = in.ExpiresAt.timestamp("expires_at")
	return p, err
}

// newKey validates a POST body into a new key: user_id and group_id are required.
func (in *apiKeyInput) newKey() (store.NewAPIKey, error) {
	p, err := in.patch()
	switch {
	case err != nil:
		return store.NewAPIKey{}, err
	case in.UserID == nil || *in.UserID <= 0:
		return store.NewAPIKey{}, invalid("user_id is required and must be a positive integer")
	case in.GroupID == nil || *in.GroupID <= 0:
		return store.NewAPIKey{}, invalid("group_id is required and must be a positive integer")
	}
	n := store.NewAPIKey{UserID: *in.UserID, GroupID: *in.GroupID, QuotaMicros: p.Quota.Micros, ExpiresAt: p.ExpiresAt.At}
	if p.Name != nil {
		n.Name = *p.Name
	}
	if p.Status != nil {
		n.Status = *p.Status
	}
	return n, nil
}

// update validates a PATCH body: a key's user and group are fixed.
func (in *apiKeyInput) update() (store.APIKeyPatch, error) {
	p, err := in.patch()
	if err == nil && (in.UserID != nil || in.GroupID != nil) {
		err = invalid("user_id and group_id of a key cannot be changed; create a new key")
	}
	return p, err
}

// createAPIKey is the one create whose answer carries more than the stored object: the
// full key, shown once.
func (a *API) createAPIKey(w http.ResponseWriter, r *http.Request) {
	var in apiKeyInput
	if err := decodeBody(w, r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	n, err := in.newKey()
	if err != nil {
		writeError(w, r, err)
		return
	}
	k, key, err := a.st.CreateAPIKey(r.Context(), n)
	if err != nil {
		writeError(w, r, err)
		return
	}
	a.publish(r.Context(), changes.Event{Kind: changes.Key, ID: k.ID})
	a.keyUsages.forgetUnknown() // GET /v1/usage must know the new key at once
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
	p, err := readPage(r.URL.Query(), 1)
	if err != nil {
		writeError(w, r, err)
		return
	}
	keys, err := a.st.ListAPIKeys(r.Context(), userID, p)
	if err != nil {
		writeError(w, r, err)
		return
	}
	keys = a.withHeldKeys(r.Context(), keys)
	writePage(w, r, p, keys, func(k store.APIKey) []int64 { return []int64{k.ID} }, infallible(newAPIKeyView))
}

func (a *API) getAPIKey(w http.ResponseWriter, r *http.Request) {
	serveByID(w, r, heldOne(a.withHeldKeys, a.st.GetAPIKey), infallible(newAPIKeyView))
}

func (a *API) patchAPIKey(w http.ResponseWriter, r *http.Request) {
	servePatch(w, r, (*apiKeyInput).update, publishedUpdate(a, changes.Key, a.updateAPIKeyAndInvalidate), infallible(newAPIKeyView))
	a.keyUsages.forgetUnknown() // the key may be active again
}

func (a *API) deleteAPIKey(w http.ResponseWriter, r *http.Request) {
	serveDelete(w, r, publishedDelete(a, changes.Key, a.st.DeleteAPIKey))
}

// KeyNotifier is told after a key is created, so that admission forgets the unknown keys it
// cached (package gateway); the notifier of accounts implements it too.
type KeyNotifier interface {
	KeysChanged()
}

func (a *API) keyCreated() {
	if n, ok := a.accounts.(KeyNotifier); ok {
		n.KeysChanged()
	}
}
