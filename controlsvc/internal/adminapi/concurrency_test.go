package adminapi

import (
	"net/http"
	"reflect"
	"testing"

	"github.com/poolgate/poolgate/controlsvc/internal/slots"
)

func TestConcurrency(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	var empty concurrencyView
	e.mustCall(http.MethodGet, "/api/v1/admin/concurrency", nil, http.StatusOK, &empty)
	if empty.Users == nil || empty.Accounts == nil || len(empty.Users)+len(empty.Accounts) != 0 {
		t.Errorf("empty = %+v, want two empty arrays", empty)
	}

	u1, u2 := e.createUser("u1"), e.createUser("u2")
	g := e.createGroup("g", "openai")
	a1, a2, a3 := e.createAccount("a1", g), e.createAccount("a2", g), e.createAccount("a3", g)

	ctx := t.Context()
	acquire := func(kind string, id int64, grant string) {
		t.Helper()
		res, err := e.slots.Enter(ctx, slots.Entry{Kind: kind, ID: id, GrantID: grant, Limit: 10})
		if err != nil || res != slots.Held {
			t.Fatalf("Enter(%s %d %s) = %v, %v", kind, id, grant, res, err)
		}
	}
	acquire(slots.KindUser, u1, "g1")
	acquire(slots.KindUser, u1, "g2")
	acquire(slots.KindAccount, a1, "g1")
	acquire(slots.KindAccount, a2, "g2")
	acquire(slots.KindAccount, a3, "g3")

	e.mustCall(http.MethodDelete, "/api/v1/admin/accounts/"+itoa(a3), nil, http.StatusNoContent, nil)

	var got concurrencyView
	e.mustCall(http.MethodGet, "/api/v1/admin/concurrency", nil, http.StatusOK, &got)
	want := concurrencyView{
		Users:    []userLoad{{UserID: u1, Active: 2}, {UserID: u2, Active: 0}},
		Accounts: []accountLoad{{AccountID: a1, Active: 1}, {AccountID: a2, Active: 1}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("concurrency = %+v\nwant          %+v", got, want)
	}

	// Released slots are gone from the counts at once.
	if err := e.slots.Release(ctx, slots.KindUser, u1, "g1"); err != nil {
		t.Fatal(err)
	}
	if err := e.slots.Release(ctx, slots.KindAccount, a1, "g1"); err != nil {
		t.Fatal(err)
	}
	e.mustCall(http.MethodGet, "/api/v1/admin/concurrency", nil, http.StatusOK, &got)
	if got.Users[0].Active != 1 || got.Accounts[0].Active != 0 || got.Accounts[1].Active != 1 {
		t.Errorf("after release = %+v", got)
	}
}
