package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
)

// cannedGrant is what controlsvc answers a granted admit call with, for an OpenAI account
// without model mapping or output cap (the body passes through unchanged). BASE is the
// account's base URL: the same loopback server, which answers as the upstream too.
const cannedGrant = `{"grant_id":"grt_0123456789abcdef","request_id":"req_0123456789abcdef","user_id":1,` +
	`"api_key_id":1,"group_id":1,"platform":"openai","account_id":7,"base_url":"BASE",` +
	`"headers":{"Authorization":"Bearer sk-upstream-0123456789abcdef"},"upstream_model":""}`

// cannedReply is the upstream's answer to a non-stream Responses request.
const cannedReply = `{"id":"resp_0123456789abcdef","object":"response","created_at":1796668495,"status":"completed",` +
	`"model":"gpt-5-codex","output":[{"type":"message","id":"msg_1","status":"completed","role":"assistant",` +
	`"content":[{"type":"output_text","text":"The store test opens a file that the fixture never writes; create it in TestMain.","annotations":[]}]}],` +
	`"usage":{"input_tokens":512,"output_tokens":24,"total_tokens":536}}`

// startControl serves the internal API: admit gets the canned grant, reports and renew 200;
// and, as the grant's upstream, /v1/responses gets the canned reply.
func startControl() *httptest.Server {
	var grant string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/internal/v1/admit":
			_, _ = io.WriteString(w, grant)
		case "/v1/responses":
			_, _ = io.WriteString(w, cannedReply)
		default:
			_, _ = io.WriteString(w, `{}`)
		}
	}))
	grant = strings.Replace(cannedGrant, "BASE", srv.URL, 1)
	return srv
}
