package adminapi

import (
	"encoding/json"
	"net/http"
	"testing"
)

func numText(n *json.Number) string {
	if n == nil {
		return "null"
	}
	return n.String()
}

func TestGroupBillingAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var def groupView
	e.mustCall(http.MethodPost, "/api/v1/admin/groups", `{"name":"plain","platform":"openai"}`, http.StatusCreated, &def)
	if def.BillingMode != "balance" || def.DailyLimitUSD != nil || def.WeeklyLimitUSD != nil || def.MonthlyLimitUSD != nil ||
		def.AllowUnpriced || def.DefaultMaxOutputTokens != 4096 || def.MaxReserveUSD != "5" {
		t.Fatalf("defaults = %+v", def.groupBillingView)
	}
	var g groupView
	e.mustCall(http.MethodPost, "/api/v1/admin/groups", `{"name":"sub","platform":"anthropic","billing_mode":"subscription",
		"daily_limit_usd":2.5,"weekly_limit_usd":null,"monthly_limit_usd":0.000001,"allow_unpriced":true,
		"default_max_output_tokens":1000,"max_reserve_usd":0.25}`, http.StatusCreated, &g)
	if g.BillingMode != "subscription" || numText(g.DailyLimitUSD) != "2.5" || g.WeeklyLimitUSD != nil ||
		numText(g.MonthlyLimitUSD) != "0.000001" || !g.AllowUnpriced || g.DefaultMaxOutputTokens != 1000 || g.MaxReserveUSD != "0.25" {
		t.Fatalf("created = %+v", g.groupBillingView)
	}
	path := "/api/v1/admin/groups/" + itoa(g.ID)
	tests := []struct {
		name  string
		body  string
		check func(groupBillingView) bool
	}{
		{"absent fields are kept", `{"name":"sub2"}`, func(b groupBillingView) bool {
			return b.BillingMode == "subscription" && numText(b.DailyLimitUSD) == "2.5" && b.MaxReserveUSD == "0.25"
		}},
		{"null clears a limit, a value sets one", `{"daily_limit_usd":null,"weekly_limit_usd":10}`, func(b groupBillingView) bool {
			return b.DailyLimitUSD == nil && numText(b.WeeklyLimitUSD) == "10" && numText(b.MonthlyLimitUSD) == "0.000001"
		}},
		{"mode and knobs", `{"billing_mode":"balance","allow_unpriced":false,"default_max_output_tokens":10000000,"max_reserve_usd":100}`,
			func(b groupBillingView) bool {
				return b.BillingMode == "balance" && !b.AllowUnpriced && b.DefaultMaxOutputTokens == 10000000 &&
					b.MaxReserveUSD == "100" && numText(b.WeeklyLimitUSD) == "10"
			}},
	}
	for _, tt := range tests { // sequential: each PATCH builds on the previous one
		var got, read groupView
		e.mustCall(http.MethodPatch, path, tt.body, http.StatusOK, &got)
		e.mustCall(http.MethodGet, path, nil, http.StatusOK, &read)
		if !tt.check(got.groupBillingView) || !tt.check(read.groupBillingView) {
			t.Fatalf("%s: PATCH = %+v, GET = %+v", tt.name, got.groupBillingView, read.groupBillingView)
		}
	}
	var list listBody[groupView]
	e.mustCall(http.MethodGet, "/api/v1/admin/groups", nil, http.StatusOK, &list)
	if len(list.Items) != 2 || list.Items[1].BillingMode != "balance" || numText(list.Items[1].WeeklyLimitUSD) != "10" {
		t.Errorf("list = %+v", list.Items)
	}
}

func TestGroupBillingValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.createGroup("g", "openai")
	tests := []struct {
		name string
		body string
		msg  string
	}{
		{"unknown mode", `{"billing_mode":"prepaid"}`, "billing_mode must be one of balance, subscription"},
		{"negative limit", `{"daily_limit_usd":-1}`, "daily_limit_usd must not be negative"},
		{"limit as string", `{"weekly_limit_usd":"10"}`, "weekly_limit_usd must be a number"},
		{"limit too precise", `{"monthly_limit_usd":0.0000001}`, "monthly_limit_usd must have at most 6 decimal places"},
		{"zero output tokens", `{"default_max_output_tokens":0}`, "default_max_output_tokens must be between 1 and 10000000"},
		{"too many output tokens", `{"default_max_output_tokens":10000001}`, "default_max_output_tokens must be between"},
		{"zero reserve cap", `{"max_reserve_usd":0}`, "max_reserve_usd must be above 0"},
		{"allow_unpriced as string", `{"allow_unpriced":"yes"}`, "allow_unpriced must be a boolean"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.wantError(http.MethodPatch, "/api/v1/admin/groups/"+itoa(id), tt.body, http.StatusBadRequest, "invalid_request_error", tt.msg)
			e.wantError(http.MethodPost, "/api/v1/admin/groups", `{"name":"x","platform":"openai",`+tt.body[1:],
				http.StatusBadRequest, "invalid_request_error", tt.msg)
		})
	}
}
