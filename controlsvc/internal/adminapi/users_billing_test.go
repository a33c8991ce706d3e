package adminapi

import (
	"net/http"
	"testing"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

func TestBalanceAdjustmentAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.createUser("payer") // balance 10
	path := "/api/v1/admin/users/" + itoa(id) + "/balance"
	tests := []struct {
		name        string
		body        string
		wantBalance string
	}{
		{"credit", `{"amount_usd":2.5,"note":"top-up #1"}`, "12.5"},
		{"debit", `{"amount_usd":-12.4,"note":"refund"}`, "0.1"},
		{"micro credit", `{"amount_usd":0.000001,"note":" trimmed "}`, "0.100001"},
	}
	for _, tt := range tests { // sequential: each adjusts the previous balance
		var u userView
		e.mustCall(http.MethodPost, path, tt.body, http.StatusOK, &u)
		if string(u.BalanceUSD) != tt.wantBalance || u.ID != id || u.ReservedUSD != "0" || string(u.AvailableUSD) != tt.wantBalance {
			t.Fatalf("%s: user = %+v, want balance %s", tt.name, u, tt.wantBalance)
		}
	}
	errs := []struct {
		name   string
		path   string
		body   string
		status int
		msg    string
	}{
		{"below zero", path, `{"amount_usd":-0.100002,"note":"x"}`, 400, "would make the balance negative (balance is 0.100001 USD)"},
		{"no note", path, `{"amount_usd":1}`, 400, "note is required"},
		{"blank note", path, `{"amount_usd":1,"note":"  "}`, 400, "note must not be empty"},
		{"no amount", path, `{"note":"x"}`, 400, "amount_usd is required"},
		{"zero", path, `{"amount_usd":0,"note":"x"}`, 400, "amount_usd must not be 0"},
		{"too precise", path, `{"amount_usd":0.0000001,"note":"x"}`, 400, "amount_usd must have at most 6 decimal places"},
		{"string amount", path, `{"amount_usd":"5","note":"x"}`, 400, "amount_usd must be a number"},
		{"overflow", path, `{"amount_usd":9223372036854.775807,"note":"x"}`, 400, "out of range"},
		{"unknown field", path, `{"amount":1,"note":"x"}`, 400, "unknown field"},
		{"unknown user", "/api/v1/admin/users/999/balance", `{"amount_usd":1,"note":"x"}`, 404, "user 999 not found"},
	}
	for _, tt := range errs {
		e.wantStatusError(http.MethodPost, tt.path, tt.body, tt.status, tt.msg)
	}
	e.wantError(http.MethodGet, path, nil, http.StatusMethodNotAllowed, "invalid_request_error", "not allowed")

	var list listBody[adjustmentView]
	e.mustCall(http.MethodGet, "/api/v1/admin/users/"+itoa(id)+"/balance-adjustments", nil, http.StatusOK, &list)
	wantNotes := []string{"trimmed", "refund", "top-up #1", "initial balance"}
	wantAmounts := []string{"0.000001", "-12.4", "2.5", "10"}
	if len(list.Items) != len(wantNotes) {
		t.Fatalf("adjustments = %+v", list.Items)
	}
	for i, a := range list.Items {
		if a.Note != wantNotes[i] || string(a.AmountUSD) != wantAmounts[i] || a.UserID != id {
			t.Errorf("adjustment %d = %+v, want %s %s", i, a, wantAmounts[i], wantNotes[i])
		}
	}
	if list.Items[0].BalanceAfterUSD != "0.100001" {
		t.Errorf("newest balance_after_usd = %s", list.Items[0].BalanceAfterUSD)
	}
	var page listBody[adjustmentView]
	e.mustCall(http.MethodGet, "/api/v1/admin/users/"+itoa(id)+"/balance-adjustments?limit=2&before_id="+itoa(list.Items[0].ID),
		nil, http.StatusOK, &page)
	if len(page.Items) != 2 || page.Items[0].Note != "refund" || page.Items[1].Note != "top-up #1" {
		t.Errorf("page = %+v", page.Items)
	}
	e.wantError(http.MethodGet, "/api/v1/admin/users/"+itoa(id)+"/balance-adjustments?limit=0", nil, 400, "invalid_request_error", "limit must be")
	e.wantError(http.MethodGet, "/api/v1/admin/users/"+itoa(id)+"/balance-adjustments?before_id=x", nil, 400, "invalid_request_error", "before_id")
	e.wantError(http.MethodGet, "/api/v1/admin/users/999/balance-adjustments", nil, 404, "not_found_error", "user 999 not found")
	// PATCH balance_usd is recorded as well.
	e.mustCall(http.MethodPatch, "/api/v1/admin/users/"+itoa(id), `{"balance_usd":3}`, http.StatusOK, nil)
	e.mustCall(http.MethodGet, "/api/v1/admin/users/"+itoa(id)+"/balance-adjustments?limit=1", nil, http.StatusOK, &list)
	if len(list.Items) != 1 || list.Items[0].AmountUSD != "2.899999" || list.Items[0].BalanceAfterUSD != "3" {
		t.Errorf("adjustment of the PATCH = %+v", list.Items)
	}
}

func TestUserViewShowsReserved(t *testing.T) {
	t.Parallel()
	e, h := newEnvWithHolds(t)
	id := e.createUser("busy")
	group := e.createGroup("busy", "openai")
	key, _ := e.createKey(id, group)
	hold(t, h, "r", id, key, group, store.BillingBalance, 2_500_000)
	var u userView
	e.mustCall(http.MethodGet, "/api/v1/admin/users/"+itoa(id), nil, http.StatusOK, &u)
	if u.BalanceUSD != "10" || u.ReservedUSD != "2.5" || u.AvailableUSD != "7.5" {
		t.Errorf("user = %+v, want balance 10, reserved 2.5, available 7.5", u)
	}
}

func TestUserGroupRatesAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.createUser("u")
	g1, g2 := e.createGroup("g1", "openai"), e.createGroup("g2", "anthropic")
	base := "/api/v1/admin/users/" + itoa(u) + "/group-rates"
	var r userGroupRateView
	e.mustCall(http.MethodPut, base+"/"+itoa(g1), `{"rate_multiplier":0.5}`, http.StatusOK, &r)
	if r.UserID != u || r.GroupID != g1 || r.RateMultiplier != "0.5" {
		t.Fatalf("PUT = %+v", r)
	}
	e.mustCall(http.MethodPut, base+"/"+itoa(g1), `{"rate_multiplier":1.25}`, http.StatusOK, &r)
	e.mustCall(http.MethodPut, base+"/"+itoa(g2), `{"rate_multiplier":0}`, http.StatusOK, nil)
	var list listBody[userGroupRateView]
	e.mustCall(http.MethodGet, base, nil, http.StatusOK, &list)
	if len(list.Items) != 2 || list.Items[0].RateMultiplier != "1.25" || list.Items[1].GroupID != g2 || list.Items[1].RateMultiplier != "0" {
		t.Fatalf("list = %+v", list.Items)
	}
	status, _ := e.call(http.MethodDelete, base+"/"+itoa(g1), nil)
	if status != http.StatusNoContent {
		t.Fatalf("DELETE = %d", status)
	}
	e.mustCall(http.MethodGet, base, nil, http.StatusOK, &list)
	if len(list.Items) != 1 || list.Items[0].GroupID != g2 {
		t.Errorf("list after DELETE = %+v", list.Items)
	}
	errs := []struct {
		name, method, path, body string
		status                   int
		msg                      string
	}{
		{"delete twice", http.MethodDelete, base + "/" + itoa(g1), "", 404, "not found"},
		{"missing rate", http.MethodPut, base + "/" + itoa(g1), `{}`, 400, "rate_multiplier is required"},
		{"negative rate", http.MethodPut, base + "/" + itoa(g1), `{"rate_multiplier":-1}`, 400, "rate_multiplier must be at least 0"},
		{"unknown group", http.MethodPut, base + "/999", `{"rate_multiplier":1}`, 404, "group 999 not found"},
		{"unknown user", http.MethodPut, "/api/v1/admin/users/999/group-rates/" + itoa(g1), `{"rate_multiplier":1}`, 404, "user 999 not found"},
		{"list of unknown user", http.MethodGet, "/api/v1/admin/users/999/group-rates", "", 404, "user 999 not found"},
	}
	for _, tt := range errs {
		e.wantStatusError(tt.method, tt.path, tt.body, tt.status, tt.msg)
	}
}
