package plugin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestForwardedRequestCarriesOnlyTheAccountsCredentials(t *testing.T) {
	t.Parallel()
	up := newTestUpstream(t)
	reply := okReply("ok")
	reply.headers = map[string]string{
		"Set-Cookie":                "session=upstream",
		"Openai-Organization":       "org-secret",
		"Openai-Project":            "proj-secret",
		"Anthropic-Organization-Id": "anth-secret",
		"X-Request-Id":              "upstream-req-1",
	}
	up.set("up-1", reply)
	// base_url with a path prefix and a trailing slash
	stub := newContractStub(t, stubAccount{id: 1, baseURL: up.srv.URL + "/alt/", apiKey: "up-1"})
	p := newTestPlugin(t, stub, nil)

	const body = `{"model":"m","input":"<b>hi</b>"}`
	req := httptest.NewRequest(http.MethodPost, "/openai/v1/responses?api-version=2&x=1", strings.NewReader(body))
	for k, v := range hostileClientHeaders {
		req.Header.Set(k, v)
	}
	req.Header.Set("Authorization", "Bearer "+testClientKey)
	req.Header.Set("OpenAI-Beta", "responses=v1")
	req.Header.Set("User-Agent", "test-client/1")
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
	}

	got := up.recorded()
	if len(got) != 1 {
		t.Fatalf("%d upstream requests", len(got))
	}
	r := got[0]
	if r.path != "/alt/v1/responses" || r.rawQuery != "api-version=2&x=1" {
		t.Fatalf("upstream URL = %s?%s", r.path, r.rawQuery)
	}
	if string(r.body) != body {
		t.Fatalf("body changed without a model mapping: %s", r.body)
	}
	if a := r.header.Values("Authorization"); len(a) != 1 || a[0] != "Bearer up-1" {
		t.Fatalf("upstream Authorization = %v", a)
	}
	for h := range hostileClientHeaders {
		if h == "Authorization" {
			continue
		}
		if v := r.header.Get(h); v != "" {
			t.Errorf("client header %s reached the upstream: %q", h, v)
		}
	}
	if r.header.Get("Openai-Beta") != "responses=v1" || r.header.Get("User-Agent") != "test-client/1" {
		t.Errorf("allowed client headers lost: %v", r.header)
	}

	for _, h := range []string{"Set-Cookie", "Openai-Organization", "Openai-Project", "Anthropic-Organization-Id", "X-Request-Id"} {
		if v := rec.Header().Get(h); v != "" {
			t.Errorf("upstream header %s reached the client: %q", h, v)
		}
	}
	if rec.Header().Get("X-Upstream-Request-Id") != "upstream-req-1" {
		t.Error("the upstream's request id must reach the client as x-upstream-request-id")
	}
	if !strings.HasPrefix(rec.Header().Get(headerRequestID), "req_") {
		t.Errorf("%s = %q", headerRequestID, rec.Header().Get(headerRequestID))
	}
	if strings.Contains(rec.Body.String(), "up-1") {
		t.Error("the account credential appears in the reply")
	}
}

func TestModelRewrite(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		path          string
		upstreamModel string
		body          string
		wantModel     string
		wantUnchanged bool
		wantOptions   string // expected stream_options, "" = absent
	}{
		{name: "mapped model", path: "/v1/responses", upstreamModel: "gpt-4o-2024-08-06",
			body: `{"model":"gpt-4o","input":"a<b","temperature":0.5}`, wantModel: "gpt-4o-2024-08-06"},
		{name: "same model sent unchanged", path: "/v1/responses", upstreamModel: "gpt-4o",
			body: `{"model":"gpt-4o", "input":"x"}`, wantModel: "gpt-4o", wantUnchanged: true},
		{name: "no mapping sent unchanged", path: "/v1/messages",
			body: `{"model":"claude","max_tokens":5}`, wantModel: "claude", wantUnchanged: true},
		{name: "chat stream gets include_usage", path: "/v1/chat/completions",
			body: `{"model":"m","stream":true}`, wantModel: "m", wantOptions: `{"include_usage":true}`},
		{name: "chat stream keeps other stream options", path: "/v1/chat/completions", upstreamModel: "m2",
			body: `{"model":"m","stream":true,"stream_options":{"include_usage":false,"x":1}}`, wantModel: "m2", wantOptions: `{"include_usage":true,"x":1}`},
		{name: "chat stream already including usage", path: "/v1/chat/completions",
			body: `{"model":"m","stream":true,"stream_options":{"include_usage":true}}`, wantModel: "m", wantUnchanged: true},
		{name: "chat without stream", path: "/v1/chat/completions",
			body: `{"model":"m","stream":false}`, wantModel: "m", wantUnchanged: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := newTestUpstream(t)
			up.set("up-1", okReply("ok"))
			stub := newContractStub(t, stubAccount{id: 1, baseURL: up.srv.URL, apiKey: "up-1", upstreamModel: tt.upstreamModel})
			p := newTestPlugin(t, stub, nil)
			rec := do(p, tt.path, tt.body, nil)
			if rec.Code != 200 {
				t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
			}
			sent := up.recorded()[0].body
			if tt.wantUnchanged {
				if string(sent) != tt.body {
					t.Fatalf("body = %s, want it unchanged", sent)
				}
				return
			}
			var got, orig map[string]json.RawMessage
			if err := json.Unmarshal(sent, &got); err != nil {
				t.Fatalf("upstream body %s: %v", sent, err)
			}
			_ = json.Unmarshal([]byte(tt.body), &orig)
			if string(got["model"]) != `"`+tt.wantModel+`"` {
				t.Fatalf("model = %s, want %s", got["model"], tt.wantModel)
			}
			if string(got["stream_options"]) != tt.wantOptions && !(tt.wantOptions == "" && got["stream_options"] == nil) {
				t.Fatalf("stream_options = %s, want %s", got["stream_options"], tt.wantOptions)
			}
			for k, v := range orig {
				if k == "model" || k == "stream_options" {
					continue
				}
				if string(got[k]) != string(v) {
					t.Fatalf("field %s = %s, want %s", k, got[k], v)
				}
			}
			r := stub.waitReport()
			if r.UpstreamModel != tt.upstreamModel || r.Model != orig2model(tt.body) {
				t.Fatalf("report models = %q/%q", r.Model, r.UpstreamModel)
			}
		})
	}
}

func orig2model(body string) string {
	var v struct{ Model string }
	_ = json.Unmarshal([]byte(body), &v)
	return v.Model
}

func TestFailoverRebuildsFromOriginalBody(t *testing.T) {
	t.Parallel()
	up := newTestUpstream(t)
	up.set("up-1", upstreamReply{status: 503, body: `{}`})
	up.set("up-2", okReply("ok"))
	stub := newContractStub(t,
		stubAccount{id: 1, baseURL: up.srv.URL, apiKey: "up-1", upstreamModel: "mapped-1"},
		stubAccount{id: 2, baseURL: up.srv.URL, apiKey: "up-2"},
	)
	p := newTestPlugin(t, stub, noSameAccountRetry)
	const body = `{"model":"asked","input":"x"}`
	if rec := do(p, "/v1/responses", body, nil); rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	got := up.recorded()
	if len(got) != 2 {
		t.Fatalf("%d upstream requests", len(got))
	}
	if !strings.Contains(string(got[0].body), `"model":"mapped-1"`) {
		t.Fatalf("first attempt body %s", got[0].body)
	}
	if string(got[1].body) != body {
		t.Fatalf("second attempt body %s, want the original", got[1].body)
	}
}
