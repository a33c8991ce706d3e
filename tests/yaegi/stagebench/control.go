package main

import (
	"io"
	"net/http"
	"net/http/httptest"
)

// cannedGrant is what controlsvc answers a granted admit call with, for an OpenAI account
// without model mapping or output cap (the body passes through unchanged).
const cannedGrant = `{"grant_id":"grt_0123456789abcdef","request_id":"req_0123456789abcdef","user_id":1,` +
	`"api_key_id":1,"group_id":1,"platform":"openai","account_id":7,"base_url":"http://127.0.0.1:9",` +
	`"headers":{"Authorization":"Bearer sk-upstream-0123456789abcdef"},"upstream_model":""}`

// startControl serves the internal API: admit gets the canned grant, reports and renew 200.
func startControl() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/internal/v1/admit" {
			_, _ = io.WriteString(w, cannedGrant)
			return
		}
		_, _ = io.WriteString(w, `{}`)
	}))
}
