package adminapi

import (
	"net/http"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/changes"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// Defaults of a new account, matching the column defaults.
const (
	defaultAccountConcurrency = 10
	defaultAccountPriority    = 50
)

// accountView never carries the credential, only whether one is set and its fingerprint
// (the first 8 hex digits of its SHA-256; docs/design.md, "Credentials at rest").
type accountView struct {
	ID            int64             `json:"id"`
	Name          string            `json:"name"`
	Platform      string            `json:"platform"`
	BaseURL       string            `json:"base_url"`
	HasCredential bool              `json:"has_credential"`
	CredentialFP  string            `json:"credential_fingerprint"`
	Concurrency   int               `json:"concurrency"`
	Priority      int               `json:"priority"`
	Status        string            `json:"status"`
	GroupIDs      []int64           `json:"group_ids"`
	ModelMapping  map[string]string `json:"model_mapping"`
	State         accountState      `json:"state"` // accounts_state.go
	LastUsedAt    *time.Time        `json:"last_used_at"`
	CreatedAt     time.Time         `json:"created_at"`
	UpdatedAt     time.Time         `json:"updated_at"`
	accountHeadersView
}

func newAccountView(a store.Account) accountView {
	v := accountView{
		ID: a.ID, Name: a.Name, Platform: a.Platform, BaseURL: a.BaseURL, HasCredential: a.HasCredential,
		CredentialFP: a.CredentialFP,
		Concurrency:  a.Concurrency, Priority: a.Priority, Status: a.Status, GroupIDs: a.GroupIDs,
		ModelMapping: a.ModelMapping, State: newAccountState(a, time.Now()), LastUsedAt: a.LastUsedAt,
		CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt, accountHeadersView: newAccountHeadersView(a.Headers),
	}
	if v.GroupIDs == nil {
		v.GroupIDs = []int64{}
	}
	if v.ModelMapping == nil {
		v.ModelMapping = map[string]string{}
	}
	return v
}

type accountInput struct {
	Name         *string            `json:"name"`
	Platform     *string            `json:"platform"`
	BaseURL      *string            `json:"base_url"`
	Credential   *credentialInput   `json:"credential"`
	Concurrency  *int               `json:"concurrency"`
	Priority     *int               `json:"priority"`
	Status       *string            `json:"status"`
	GroupIDs     *[]int64           `json:"group_ids"`
	ModelMapping *map[string]string `json:"model_mapping"`
	accountHeadersInput
}

// patch validates the input. On create, name, platform, base_url and credential are
// required.
func (in *accountInput) patch(create bool) (store.AccountPatch, error) {
	p := store.AccountPatch{
		Name: in.Name, Platform: in.Platform, Concurrency: in.Concurrency, Priority: in.Priority,
		Status: in.Status, GroupIDs: in.GroupIDs, ModelMapping: in.ModelMapping,
	}
	if err := checkName("name", in.Name, create); err != nil {
		return p, err
	}
	if create && in.Platform == nil {
		return p, invalid("platform is required (one of openai, anthropic)")
	}
	if err := checkEnum("platform", in.Platform, platforms); err != nil {
		return p, err
	}
	if in.BaseURL != nil {
		u, err := normalizeBaseURL(*in.BaseURL)
		if err != nil {
			return p, err
		}
		p.BaseURL = &u
	} else if create {
		return p, invalid("base_url is required")
	}
	if in.Credential != nil {
		key, err := in.Credential.apiKey()
		if err != nil {
			return p, err
		}
		p.APIKey = &key
	} else if create {
		return p, invalid(`credential is required, e.g. {"api_key": "sk-..."}`)
	}
	if err := checkConcurrency(in.Concurrency); err != nil {
		return p, err
	}
	if err := checkPriority(in.Priority); err != nil {
		return p, err
	}
	if err := checkEnum("status", in.Status, statuses); err != nil {
		return p, err
	}
	if in.GroupIDs != nil {
		if err := checkGroupIDs(*in.GroupIDs); err != nil {
			return p, err
		}
	}
	if in.ModelMapping != nil {
		if err := checkModelMapping(*in.ModelMapping); err != nil {
			return p, err
		}
	}
	var err error
	p.Headers, err = in.headers() // account_headers.go
	return p, err
}

// newAccount validates a POST body into a new account; absent fields take the column
// defaults.
func (in *accountInput) newAccount() (store.NewAccount, error) {
	p, err := in.patch(true)
	if err != nil {
		return store.NewAccount{}, err
	}
	n := store.NewAccount{
		Name: *p.Name, Platform: *p.Platform, BaseURL: *p.BaseURL, APIKey: *p.APIKey,
		Concurrency: defaultAccountConcurrency, Priority: defaultAccountPriority, Status: "active",
	}
	if p.Concurrency != nil {
		n.Concurrency = *p.Concurrency
	}
	if p.Priority != nil {
		n.Priority = *p.Priority
	}
	if p.Status != nil {
		n.Status = *p.Status
	}
	if p.GroupIDs != nil {
		n.GroupIDs = *p.GroupIDs
	}
	if p.ModelMapping != nil {
		n.ModelMapping = *p.ModelMapping
	}
	if p.Headers != nil {
		n.Headers = *p.Headers
	}
	return n, nil
}

func (a *API) createAccount(w http.ResponseWriter, r *http.Request) {
	create := func(in *accountInput) (store.NewAccount, error) {
		n, err := in.newAccount()
		if err == nil {
			err = checkUpstreamAddress(n.BaseURL, a.allowPrivate) // upstreams.go
		}
		return n, err
	}
	serveCreate(w, r, create, publishedAccountCreate(a, a.st.CreateAccount), infallible(newAccountView))
}

func (a *API) listAccounts(w http.ResponseWriter, r *http.Request) {
	servePage(w, r, a.st.ListAccounts, func(a store.Account) []int64 { return []int64{a.ID} }, a.accountViewWithBreakers(r.Context()))
}

func (a *API) getAccount(w http.ResponseWriter, r *http.Request) {
	serveByID(w, r, a.st.GetAccount, a.accountViewWithBreakers(r.Context()))
}

func (a *API) patchAccount(w http.ResponseWriter, r *http.Request) {
	update := func(in *accountInput) (store.AccountPatch, error) {
		p, err := in.patch(false)
		if err == nil && p.BaseURL != nil {
			err = checkUpstreamAddress(*p.BaseURL, a.allowPrivate) // upstreams.go
		}
		return p, err
	}
	servePatch(w, r, update, publishedAccountUpdate(a, a.st.UpdateAccount), infallible(newAccountView))
}

func (a *API) deleteAccount(w http.ResponseWriter, r *http.Request) {
	serveDelete(w, r, publishedDelete(a, changes.Account, a.st.DeleteAccount))
}
