package adminapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/changes"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

type groupView struct {
	ID             int64       `json:"id"`
	Name           string      `json:"name"`
	Platform       string      `json:"platform"`
	RateMultiplier json.Number `json:"rate_multiplier"`
	Status         string      `json:"status"`
	// Stream deadlines of the group's requests in milliseconds: null = the gateway's
	// default (the plugin configuration), 0 = off.
	FirstTokenTimeoutMs *int64 `json:"first_token_timeout_ms"`
	StreamIdleTimeoutMs *int64 `json:"stream_idle_timeout_ms"`
	groupRulesView
	groupBillingView
	groupForwardingView
	groupFailoverView
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func newGroupView(g store.Group) (groupView, error) {
	rate, err := decimalTextToMicros(g.RateMultiplier)
	if err != nil {
		return groupView{}, fmt.Errorf("reading rate multiplier of group %d: %w", g.ID, err)
	}
	return groupView{
		ID: g.ID, Name: g.Name, Platform: g.Platform, RateMultiplier: formatMicros(rate),
		Status: g.Status, FirstTokenTimeoutMs: g.FirstTokenTimeoutMs, StreamIdleTimeoutMs: g.StreamIdleTimeoutMs,
		groupRulesView: newGroupRulesView(g.GroupModelRules), groupBillingView: newGroupBillingView(g.GroupBilling), CreatedAt: g.CreatedAt, UpdatedAt: g.UpdatedAt,
		groupForwardingView: newGroupForwardingView(g.GroupForwarding),
		groupFailoverView:   newGroupFailoverView(g.GroupFailover),
	}, nil
}

// groupInput is the body of POST and PATCH /groups; absent fields are nil or not present.
type groupInput struct {
	Name                *string          `json:"name"`
	Platform            *string          `json:"platform"`
	RateMultiplier      *json.RawMessage `json:"rate_multiplier"`
	Status              *string          `json:"status"`
	FirstTokenTimeoutMs nullable         `json:"first_token_timeout_ms"`
	StreamIdleTimeoutMs nullable         `json:"stream_idle_timeout_ms"`
	groupRulesInput
	groupBillingInput
	groupForwardingInput
	groupFailoverInput
}

// millis reads a stream deadline: an integer from 0 (off) to store.MaxGroupTimeoutMs, or
// null for the gateway's default.
func (n *nullable) millis(field string) (store.MillisPatch, error) {
	if !n.present {
		return store.MillisPatch{}, nil
	}
	if n.isNull() {
		return store.MillisPatch{Set: true}, nil
	}
	var v int64
	if err := json.Unmarshal(n.raw, &v); err != nil {
		return store.MillisPatch{}, invalid("%s must be an integer number of milliseconds, or null for the gateway's default", field)
	}
	if v < 0 || v > store.MaxGroupTimeoutMs {
		return store.MillisPatch{}, invalid("%s must be between 0 (off) and %d (30 minutes), or null for the gateway's default",
			field, store.MaxGroupTimeoutMs)
	}
	return store.MillisPatch{Set: true, Ms: &v}, nil
}

// timeouts validates both deadline fields.
func (in *groupInput) timeouts() (firstToken, streamIdle store.MillisPatch, err error) {
	if firstToken, err = in.FirstTokenTimeoutMs.millis("first_token_timeout_ms"); err != nil {
		return firstToken, streamIdle, err
	}
	streamIdle, err = in.StreamIdleTimeoutMs.millis("stream_idle_timeout_ms")
	return firstToken, streamIdle, err
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
	firstToken, streamIdle, err := in.timeouts()
	if err != nil {
		return g, err
	}
	g.FirstTokenTimeoutMs, g.StreamIdleTimeoutMs = firstToken.Ms, streamIdle.Ms
	if g.GroupModelRules, err = in.rules(); err != nil {
		return g, err
	}
	if g.GroupForwarding, err = in.forwarding(); err != nil {
		return g, err
	}
	if g.GroupFailover, err = in.failover(); err != nil {
		return g, err
	}
	g.GroupBilling, err = in.billing()
	return g, err
}

// patch validates a PATCH body. The platform cannot change: the group's accounts and keys
// were attached for it.
func (in *groupInput) patch() (store.GroupPatch, error) {
	p := store.GroupPatch{Name: in.Name, Status: in.Status}
	if in.Platform != nil {
		return p, invalid("platform cannot be changed; create a new group for another platform")
	}
	if err := checkName("name", in.Name, false); err != nil {
		return p, err
	}
	if err := checkEnum("status", in.Status, statuses); err != nil {
		return p, err
	}
	if in.RateMultiplier != nil {
		rate, err := parseRateMultiplier(*in.RateMultiplier)
		if err != nil {
			return p, err
		}
		p.RateMultiplier = &rate
	}
	var err error
	if p.FirstTokenTimeout, p.StreamIdleTimeout, err = in.timeouts(); err != nil {
		return p, err
	}
	if err := in.rulesPatch(&p); err != nil {
		return p, err
	}
	if err := in.forwardingPatch(&p); err != nil {
		return p, err
	}
	if err := in.failoverPatch(&p); err != nil {
		return p, err
	}
	return p, in.billingPatch(&p)
}

func (a *API) createGroup(w http.ResponseWriter, r *http.Request) {
	serveCreate(w, r, (*groupInput).group, a.st.CreateGroup, newGroupView)
}

func (a *API) listGroups(w http.ResponseWriter, r *http.Request) {
	servePage(w, r, a.st.ListGroups, func(g store.Group) []int64 { return []int64{g.ID} }, newGroupView)
}

func (a *API) getGroup(w http.ResponseWriter, r *http.Request) {
	serveByID(w, r, a.st.GetGroup, newGroupView)
}

func (a *API) patchGroup(w http.ResponseWriter, r *http.Request) {
	servePatch(w, r, (*groupInput).patch, publishedUpdate(a, changes.Group, a.st.UpdateGroup), newGroupView)
	a.keyUsages.forgetUnknown() // the group's keys may be usable again
}
