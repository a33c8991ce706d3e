package gatewaytest

import (
	"fmt"
	"sync/atomic"
	"time"
)

// Tenant is one user with one key on a group of its own, served by its own accounts of the
// fake upstream, so scenarios sharing a stack do not see each other.
type Tenant struct {
	UserID, GroupID, KeyID int64
	Key                    string
	AccountIDs             []int64
	Credentials            []string // the accounts' upstream keys, to program the fake
}

// TenantSpec says what NewTenant creates.
type TenantSpec struct {
	Name               string
	UserConcurrency    int
	BalanceMicros      int64
	AccountConcurrency []int // one account per entry, with that concurrency
}

var seq atomic.Int64

// NewTenant creates the user, an openai group, its accounts and a key.
func (c *Client) NewTenant(spec TenantSpec) Tenant {
	c.T.Helper()
	name := fmt.Sprintf("%s-%d-%d", spec.Name, time.Now().UnixNano()%1e6, seq.Add(1))
	u := c.MustAdmin("POST", "/users", Obj{"name": name, "concurrency": spec.UserConcurrency,
		"balance_usd": float64(spec.BalanceMicros) / 1e6})
	g := c.MustAdmin("POST", "/groups", Obj{"name": name, "platform": "openai"})
	tn := Tenant{UserID: ID(u), GroupID: ID(g)}
	for i, conc := range spec.AccountConcurrency {
		cred := fmt.Sprintf("sk-%s-%d", name, i)
		a := c.MustAdmin("POST", "/accounts", Obj{"name": fmt.Sprintf("%s-%d", name, i), "platform": "openai",
			"base_url": c.S.FakeURL, "credential": Obj{"api_key": cred}, "concurrency": conc,
			"group_ids": []int64{tn.GroupID}})
		tn.AccountIDs = append(tn.AccountIDs, ID(a))
		tn.Credentials = append(tn.Credentials, cred)
	}
	k := c.MustAdmin("POST", "/api-keys", Obj{"user_id": tn.UserID, "group_id": tn.GroupID, "name": name})
	tn.KeyID = ID(k)
	tn.Key, _ = k["key"].(string)
	if tn.Key == "" {
		c.T.Fatalf("api key creation returned no key: %v", k)
	}
	return tn
}

// AddUser gives tn's group another user with a key of its own: a tenant sharing tn's
// accounts (to load one account from several users).
func (c *Client) AddUser(tn Tenant, name string, concurrency int, balanceMicros int64) Tenant {
	c.T.Helper()
	name = fmt.Sprintf("%s-%d-%d", name, time.Now().UnixNano()%1e6, seq.Add(1))
	u := c.MustAdmin("POST", "/users", Obj{"name": name, "concurrency": concurrency,
		"balance_usd": float64(balanceMicros) / 1e6})
	k := c.MustAdmin("POST", "/api-keys", Obj{"user_id": ID(u), "group_id": tn.GroupID, "name": name})
	out := tn
	out.UserID, out.KeyID = ID(u), ID(k)
	out.Key, _ = k["key"].(string)
	return out
}
