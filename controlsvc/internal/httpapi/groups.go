package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

type groupView struct {
	ID             int64       `json:"id"`
	Name           string      `json:"name"`
	Platform       string      `json:"platform"`
	RateMultiplier json.Number `json:"rate_multiplier"`
	Status         string      `json:"status"`
	CreatedAt      time.Time   `json:"created_at"`
	UpdatedAt      time.Time   `json:"updated_at"`
}

func newGroupView(g store.Group) (groupView, error) {
	rate, err := decimalTextToMicros(g.RateMultiplier)
	if err != nil {
		return groupView{}, fmt.Errorf("reading rate multiplier of group %d: %w", g.ID, err)
	}
	return groupView{
		ID: g.ID, Name: g.Name, Platform: g.Platform, RateMultiplier: formatMicros(rate),
		Status: g.Status, CreatedAt: g.CreatedAt, UpdatedAt: g.UpdatedAt,
	}, nil
}

type groupInput struct {
	Name           *string          `json:"name"`
	Platform       *string          `json:"platform"`
	RateMultiplier *json.RawMessage `json:"rate_multiplier"`
	Status         *string          `json:"status"`
}

func (in *groupInput) group() (store.Group, error) {
	g := store.Group{RateMultiplier: "1", Status: "active"}
	if err := checkName("name", in.Name, true); err != nil {
		return g, err
	}
	g.Name = *in.Name
	if in.Platform == nil {
		return g, invalid("platform is required (one of openai, anthropic)")
	}
	if err := checkEnum("platform", in.Platform, platforms); err != nil {
		return g, err
	}
	g.Platform = *in.Platform
	if err := checkEnum("status", in.Status, statuses); err != nil {
		return g, err
	}
	if in.Status != nil {
		g.Status = *in.Status
	}
	if in.RateMultiplier != nil {
		rate, err := parseRateMultiplier(*in.RateMultiplier)
		if err != nil {
			return g, err
		}
		g.RateMultiplier = rate
	}
	return g, nil
}

func (a *API) createGroup(w http.ResponseWriter, r *http.Request) {
	var in groupInput
	if err := decodeBody(w, r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	g, err := in.group()
	if err != nil {
		writeError(w, r, err)
		return
	}
	created, err := a.st.CreateGroup(r.Context(), g)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeView(w, r, http.StatusCreated, created, newGroupView)
}

func (a *API) listGroups(w http.ResponseWriter, r *http.Request) {
	groups, err := a.st.ListGroups(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	views := make([]groupView, 0, len(groups))
	for _, g := range groups {
		v, err := newGroupView(g)
		if err != nil {
			writeError(w, r, err)
			return
		}
		views = append(views, v)
	}
	writeList(w, views)
}

func (a *API) getGroup(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	g, err := a.st.GetGroup(r.Context(), id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeView(w, r, http.StatusOK, g, newGroupView)
}

// writeView renders one object through a conversion that can fail.
func writeView[T, V any](w http.ResponseWriter, r *http.Request, status int, v T, view func(T) (V, error)) {
	out, err := view(v)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, status, out)
}
