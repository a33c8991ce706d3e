package adminapi

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fingerprint is what the admin API shows of a credential, as an operator computes it:
// printf %s "$KEY" | sha256sum | cut -c1-8.
func fingerprint(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])[:8]
}

func TestAccountsCRUD(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	oa := e.createGroup("oa", "openai")
	oa2 := e.createGroup("oa2", "openai")
	an := e.createGroup("an", "anthropic")
	const secret = "sk-upstream-VERY-SECRET-0001"
	const secret2 = "sk-upstream-VERY-SECRET-0002"
	e.secrets = append(e.secrets, secret, secret2)

	var a accountView
	e.mustCall(http.MethodPost, "/api/v1/admin/accounts", map[string]any{
		"name": "primary", "platform": "openai", "base_url": "https://api.openai.com/",
		"credential": map[string]string{"api_key": secret}, "concurrency": 2, "priority": 1,
		"group_ids": []int64{oa2, oa}, "model_mapping": map[string]string{"gpt-4o": "gpt-4o-2024-08-06", "gpt-5*": "gpt-5"},
	}, http.StatusCreated, &a)
	want := accountView{
		ID: a.ID, Name: "primary", Platform: "openai", BaseURL: "https://api.openai.com", HasCredential: true,
		CredentialFP: fingerprint(secret),
		Concurrency:  2, Priority: 1, Status: "active", GroupIDs: []int64{oa, oa2},
		ModelMapping: map[string]string{"gpt-4o": "gpt-4o-2024-08-06", "gpt-5*": "gpt-5"},
		State:        accountState{ModelBlocks: map[string]time.Time{}},
		CreatedAt:    a.CreatedAt, UpdatedAt: a.UpdatedAt,
		accountHeadersView: accountHeadersView{Headers: map[string]string{}},
	}
	if !reflect.DeepEqual(a, want) {
		t.Fatalf("created = %+v\nwant      %+v", a, want)
	}

	var defaults accountView
	e.mustCall(http.MethodPost, "/api/v1/admin/accounts", map[string]any{
		"name": "claude", "platform": "anthropic", "base_url": "http://127.0.0.1:8081/anthropic",
		"credential": map[string]string{"api_key": secret2},
	}, http.StatusCreated, &defaults)
	if defaults.Concurrency != 10 || defaults.Priority != 50 || defaults.Status != "active" ||
		defaults.GroupIDs == nil || len(defaults.GroupIDs) != 0 || defaults.ModelMapping == nil {
		t.Errorf("defaults = %+v", defaults)
	}

	var got accountView
	e.mustCall(http.MethodGet, "/api/v1/admin/accounts/"+itoa(a.ID), nil, http.StatusOK, &got)
	if !reflect.DeepEqual(got, a) {
		t.Errorf("GET = %+v, want %+v", got, a)
	}

	var patched accountView
	e.mustCall(http.MethodPatch, "/api/v1/admin/accounts/"+itoa(a.ID), map[string]any{
		"status": "disabled", "group_ids": []int64{oa}, "model_mapping": map[string]string{},
		"credential": map[string]string{"api_key": secret2},
	}, http.StatusOK, &patched)
	if patched.Status != "disabled" || !reflect.DeepEqual(patched.GroupIDs, []int64{oa}) || len(patched.ModelMapping) != 0 ||
		patched.Name != "primary" || patched.Priority != 1 || !patched.HasCredential || patched.CredentialFP != fingerprint(secret2) {
		t.Errorf("patched = %+v", patched)
	}
	e.mustCall(http.MethodPatch, "/api/v1/admin/accounts/"+itoa(a.ID), `{"platform":"anthropic","group_ids":[`+itoa(an)+`]}`, http.StatusOK, &patched)
	if patched.Platform != "anthropic" || !reflect.DeepEqual(patched.GroupIDs, []int64{an}) {
		t.Errorf("platform move = %+v", patched)
	}

	var list listBody[accountView]
	e.mustCall(http.MethodGet, "/api/v1/admin/accounts", nil, http.StatusOK, &list)
	if len(list.Items) != 2 {
		t.Fatalf("list = %+v", list.Items)
	}

	status, body := e.call(http.MethodDelete, "/api/v1/admin/accounts/"+itoa(a.ID), nil)
	if status != http.StatusNoContent || len(body) != 0 {
		t.Fatalf("DELETE = %d %q, want 204 without body", status, body)
	}
	e.wantError(http.MethodGet, "/api/v1/admin/accounts/"+itoa(a.ID), nil, http.StatusNotFound, "not_found_error", "account")
	e.wantError(http.MethodPatch, "/api/v1/admin/accounts/"+itoa(a.ID), `{"name":"x"}`, http.StatusNotFound, "not_found_error", "account")
	e.wantError(http.MethodDelete, "/api/v1/admin/accounts/"+itoa(a.ID), nil, http.StatusNotFound, "not_found_error", "account")
	e.mustCall(http.MethodGet, "/api/v1/admin/accounts", nil, http.StatusOK, &list)
	if len(list.Items) != 1 || list.Items[0].ID != defaults.ID {
		t.Errorf("list after delete = %+v", list.Items)
	}
	// e.call has checked every body above for both secrets; check the raw list once more.
	_, raw := e.call(http.MethodGet, "/api/v1/admin/accounts", nil)
	if strings.Contains(string(raw), "api_key") || strings.Contains(string(raw), `"credential"`) {
		t.Errorf("account list mentions the credential: %s", raw)
	}
}

func TestAccountsValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	oa := e.createGroup("oa", "openai")
	an := e.createGroup("an", "anthropic")
	id := e.createAccount("existing", oa)
	base := `"name":"a","platform":"openai","credential":{"api_key":"k"}`
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		msg    string
	}{
		{"name missing", "POST", "", `{"platform":"openai","base_url":"https://x.test","credential":{"api_key":"k"}}`, "name is required"},
		{"platform missing", "POST", "", `{"name":"a","base_url":"https://x.test","credential":{"api_key":"k"}}`, "platform is required"},
		{"platform unknown", "POST", "", `{"name":"a","platform":"azure","base_url":"https://x.test","credential":{"api_key":"k"}}`, "platform must be one of"},
		{"base_url missing", "POST", "", `{` + base + `}`, "base_url is required"},
		{"base_url relative", "POST", "", `{` + base + `,"base_url":"/v1"}`, "base_url must be an absolute http or https URL"},
		{"base_url ftp", "POST", "", `{` + base + `,"base_url":"ftp://x.test"}`, "base_url must be an absolute http or https URL"},
		{"base_url no host", "POST", "", `{` + base + `,"base_url":"https://"}`, "base_url must be an absolute"},
		{"base_url garbage", "POST", "", `{` + base + `,"base_url":"ht tp://x"}`, "base_url must be an absolute"},
		{"base_url userinfo", "POST", "", `{` + base + `,"base_url":"https://user:pw@x.test"}`, "base_url must not contain credentials"},
		{"base_url query", "POST", "", `{` + base + `,"base_url":"https://x.test?a=1"}`, "query or fragment"},
		{"credential missing", "POST", "", `{"name":"a","platform":"openai","base_url":"https://x.test"}`, "credential is required"},
		{"credential empty key", "POST", "", `{"name":"a","platform":"openai","base_url":"https://x.test","credential":{"api_key":""}}`, "credential.api_key is required"},
		{"credential unknown field", "POST", "", `{"name":"a","platform":"openai","base_url":"https://x.test","credential":{"token":"k"}}`, `unknown field "token"`},
		{"credential newline", "POST", "", `{"name":"a","platform":"openai","base_url":"https://x.test","credential":{"api_key":"k\r\nX-Evil: 1"}}`, "line breaks"},
		{"concurrency negative", "POST", "", `{` + base + `,"base_url":"https://x.test","concurrency":-2}`, "concurrency must be between 0"},
		{"priority not integer", "POST", "", `{` + base + `,"base_url":"https://x.test","priority":"high"}`, "priority must be an integer"},
		{"status unknown", "POST", "", `{` + base + `,"base_url":"https://x.test","status":"paused"}`, "status must be one of active, disabled"},
		{"group ids not array", "POST", "", `{` + base + `,"base_url":"https://x.test","group_ids":1}`, "group_ids must be an array of integers"},
		{"group id zero", "POST", "", `{` + base + `,"base_url":"https://x.test","group_ids":[0]}`, "group_ids must hold positive integers"},
		{"group unknown", "POST", "", `{` + base + `,"base_url":"https://x.test","group_ids":[` + itoa(oa) + `,424242]}`, "group_ids: group 424242 does not exist"},
		{"group other platform", "POST", "", `{` + base + `,"base_url":"https://x.test","group_ids":[` + itoa(an) + `]}`, "is a anthropic group"},
		{"mapping not object", "POST", "", `{` + base + `,"base_url":"https://x.test","model_mapping":["a"]}`, "model_mapping must be an object"},
		{"mapping value not string", "POST", "", `{` + base + `,"base_url":"https://x.test","model_mapping":{"a":1}}`, "model_mapping"},
		{"mapping inner star", "POST", "", `{` + base + `,"base_url":"https://x.test","model_mapping":{"gpt-*-mini":"x"}}`, "* is only allowed at the end"},
		{"mapping empty target", "POST", "", `{` + base + `,"base_url":"https://x.test","model_mapping":{"gpt-4o":""}}`, "must not be empty"},
		{"mapping empty key", "POST", "", `{` + base + `,"base_url":"https://x.test","model_mapping":{"":"gpt-4o"}}`, "keys must not be empty"},
		{"patch platform into mismatch", "PATCH", "/" + itoa(id), `{"platform":"anthropic"}`, "group_ids: group " + itoa(oa) + " is a openai group"},
		{"patch bad base_url", "PATCH", "/" + itoa(id), `{"base_url":"api.openai.com"}`, "base_url must be an absolute"},
		{"patch empty credential", "PATCH", "/" + itoa(id), `{"credential":{}}`, "credential.api_key is required"},
		{"patch unknown group", "PATCH", "/" + itoa(id), `{"group_ids":[999]}`, "group 999 does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.wantError(tt.method, "/api/v1/admin/accounts"+tt.path, tt.body, http.StatusBadRequest, "invalid_request_error", tt.msg)
		})
	}
	var list listBody[accountView]
	e.mustCall(http.MethodGet, "/api/v1/admin/accounts", nil, http.StatusOK, &list)
	if len(list.Items) != 1 || list.Items[0].Platform != "openai" || !reflect.DeepEqual(list.Items[0].GroupIDs, []int64{oa}) {
		t.Errorf("after rejected requests, accounts = %+v; want only the existing one, unchanged", list.Items)
	}
}
