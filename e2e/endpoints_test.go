package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/openai/openai-go/v3"
)

// The paths (docs/design.md, "Paths") through the real Traefik: the routes without /v1,
// unknown paths as JSON 404s in their API's shape, count_tokens forwarded unbilled or
// estimated, GET /v1/models and GET /v1/models/{id}.

// send makes one request to the gateway with the given headers.
func send(t *testing.T, method, path, body string, hdr map[string]string) (int, http.Header, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, gw.GatewayURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(raw)
}

func TestEndpointsWithoutV1(t *testing.T) {
	cred := unique("sk-nov1")
	tn, ids := newTenant(t, accountSpec{Credential: cred})
	tests := []struct{ name, path, body, upstream string }{
		{"responses", "/responses", responsesBody, "/v1/responses"},
		{"chat completions", "/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, "/v1/chat/completions"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, body := post(t, tt.path, tn.Key, tt.body, nil)
			if code != http.StatusOK {
				t.Fatalf("POST %s = %d %s, want 200", tt.path, code, body)
			}
			ups := upstreamRequestsFor(t, cred)
			if len(ups) != i+1 || ups[i].Path != tt.upstream {
				t.Fatalf("fake saw %d requests, last %+v, want %s", len(ups), ups[len(ups)-1].Path, tt.upstream)
			}
		})
	}
	recs := usageFor(t, tn.KeyID, len(tests))
	paths := map[string]bool{}
	for _, r := range recs {
		p, _ := r["path"].(string)
		paths[p] = true
	}
	if !paths["/v1/responses"] || !paths["/v1/chat/completions"] {
		t.Fatalf("usage records of paths %v, want the /v1 forms", paths)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, ids)
}

func TestUnknownPathsAreJSON404(t *testing.T) {
	tests := []struct {
		name, method, path string
		hdr                map[string]string
		anthropic          bool
	}{
		{name: "unknown /v1 path", method: "POST", path: "/v1/embeddings"},
		{name: "GET on an AI path", method: "GET", path: "/v1/responses"},
		{name: "unprefixed unknown", method: "POST", path: "/models/x"},
		{name: "GET on the compaction route", method: "GET", path: "/v1/responses/compact"},
		{name: "under messages", method: "POST", path: "/v1/messages/batches", anthropic: true},
		{name: "anthropic client", method: "GET", path: "/v1/files", hdr: map[string]string{"anthropic-version": "2023-06-01"}, anthropic: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, h, body := send(t, tt.method, tt.path, "{}", tt.hdr)
			var e struct {
				Type  string `json:"type"`
				Error struct {
					Type    string `json:"type"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if code != http.StatusNotFound || h.Get("Content-Type") != "application/json" || json.Unmarshal([]byte(body), &e) != nil {
				t.Fatalf("%s %s = %d %q %s, want a JSON 404", tt.method, tt.path, code, h.Get("Content-Type"), body)
			}
			wantType := "invalid_request_error"
			if tt.anthropic {
				wantType = "not_found_error"
			}
			if (e.Type == "error") != tt.anthropic || e.Error.Type != wantType || e.Error.Message != "Invalid URL ("+tt.method+" "+tt.path+")" {
				t.Fatalf("%s %s = %s, want %s in the anthropic=%v shape", tt.method, tt.path, body, wantType, tt.anthropic)
			}
		})
	}
	// GET /v1/usage is still controlsvc's, not the plugin's 404.
	tn, _ := newTenant(t)
	if code, out := getKeyUsage(t, tn.Key); code != http.StatusOK {
		t.Fatalf("GET /v1/usage = %d %v, want 200", code, out)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, nil)
}

func balanceOf(t *testing.T, userID int64) int64 {
	t.Helper()
	return usd(mustAdmin(t, "GET", fmt.Sprintf("/users/%d", userID), nil), "balance_usd")
}

// count_tokens is free upstream and never billed here: forwarded to an account of an
// anthropic group, estimated on an openai group; no usage record, no balance change, no slot.
func TestCountTokensEndpoint(t *testing.T) {
	cred := unique("sk-count")
	anth, anthIDs := anthropicTenant(t, nil, accountSpec{Credential: cred, Priority: 1})
	oai, oaiIDs := newTenant(t, accountSpec{Credential: unique("sk-count-oai")})
	const body = `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"how long is this?"}]}`
	before := balanceOf(t, anth.UserID)

	for _, path := range []string{"/v1/messages/count_tokens?beta=true", "/messages/count_tokens"} {
		code, _, got := send(t, "POST", path, body, map[string]string{"x-api-key": anth.Key,
			"anthropic-version": "2023-06-01", "Content-Type": "application/json"})
		if code != http.StatusOK || got != `{"input_tokens":4242}` {
			t.Fatalf("%s on an anthropic group = %d %s, want the account's count", path, code, got)
		}
	}
	ups := fakeRequestsWith(t, "x-api-key", cred)
	if len(ups) != 2 || ups[0].Path != "/v1/messages/count_tokens" || !strings.Contains(ups[0].Body, "how long is this?") {
		t.Fatalf("fake saw %+v, want two count_tokens requests with the client's body", ups)
	}
	if headerValue(ups[0].Headers, "x-api-key") == anth.Key {
		t.Fatal("the client's key reached the upstream")
	}

	oaiBody := strings.Replace(body, "claude-sonnet-4-5", "gpt-4o", 1)
	code, _, got := send(t, "POST", "/v1/messages/count_tokens", oaiBody, map[string]string{"Authorization": "Bearer " + oai.Key})
	if want := fmt.Sprintf(`{"input_tokens":%d}`, (len(oaiBody)+3)/4); code != http.StatusOK || got != want {
		t.Fatalf("count_tokens on an openai group = %d %s, want the estimate %s", code, got, want)
	}
	if n := len(upstreamRequestsFor(t, oai.Creds[0])); n != 0 {
		t.Fatalf("the openai account got %d requests, want none", n)
	}

	// Reports are asynchronous: a record would have arrived within this wait.
	time.Sleep(time.Second)
	for _, tn := range []tenant{anth, oai} {
		out := mustAdmin(t, "GET", fmt.Sprintf("/usage?api_key_id=%d", tn.KeyID), nil)
		if items, _ := out["items"].([]any); len(items) != 0 {
			t.Fatalf("key %d has usage records %v, want none: count_tokens is never billed", tn.KeyID, items)
		}
	}
	if after := balanceOf(t, anth.UserID); after != before {
		t.Fatalf("balance %d µUSD after count_tokens, was %d", after, before)
	}
	assertNoSlotsHeld(t, []int64{anth.UserID, oai.UserID}, append(anthIDs, oaiIDs...))
}

// GET /v1/models lists what the key can use, in OpenAI's shape or, for an Anthropic client,
// Anthropic's, from controlsvc's POST /internal/v1/models.
func TestModelsEndpoint(t *testing.T) {
	tn, ids := newTenant(t, accountSpec{Credential: unique("sk-models"), ModelMapping: map[string]string{"gpt-4o": "gpt-4o"}})
	code, _, body := send(t, "GET", "/v1/models", "", map[string]string{"Authorization": "Bearer " + tn.Key})
	if code != http.StatusOK {
		t.Fatalf("GET /v1/models: %d %s", code, body)
	}
	var list struct {
		Object string `json:"object"`
		Data   []struct {
			ID     string `json:"id"`
			Object string `json:"object"`
		} `json:"data"`
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &list) != nil || list.Object != "list" || len(list.Data) == 0 {
		t.Fatalf("GET /v1/models = %d %s, want an OpenAI list", code, body)
	}
	code, _, body = send(t, "GET", "/models", "", map[string]string{"x-api-key": tn.Key, "anthropic-version": "2023-06-01"})
	var alist struct {
		Data    []map[string]any `json:"data"`
		HasMore *bool            `json:"has_more"`
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &alist) != nil || alist.HasMore == nil || len(alist.Data) == 0 {
		t.Fatalf("GET /models (Anthropic client) = %d %s, want an Anthropic list", code, body)
	}
	if code, _, body := send(t, "GET", "/v1/models", "", map[string]string{"Authorization": "Bearer sk-pg-" + strings.Repeat("0", 48)}); code != http.StatusUnauthorized {
		t.Fatalf("GET /v1/models with an unknown key = %d %s, want 401", code, body)
	}

	// GET /v1/models/{id}, through the official SDKs: one model of the list, in each shape;
	// a model the key cannot use is each API's 404.
	ctx := context.Background()
	m, err := sdkClient(tn.Key).Models.Get(ctx, "gpt-4o")
	if err != nil || m.ID != "gpt-4o" || m.Object != "model" {
		t.Fatalf("OpenAI SDK models.retrieve(gpt-4o) = %+v, %v", m, err)
	}
	_, err = sdkClient(tn.Key).Models.Get(ctx, "no-such-model")
	var oerr *openai.Error
	if !errors.As(err, &oerr) || oerr.StatusCode != http.StatusNotFound || oerr.Code != "model_not_found" {
		t.Fatalf("OpenAI SDK models.retrieve(no-such-model) = %v, want 404 model_not_found", err)
	}
	ac := anthropicClient(tn.Key)
	am, err := ac.Models.Get(ctx, "gpt-4o", anthropic.ModelGetParams{})
	if err != nil || am.ID != "gpt-4o" || string(am.Type) != "model" {
		t.Fatalf("Anthropic SDK models.retrieve(gpt-4o) = %+v, %v", am, err)
	}
	_, err = ac.Models.Get(ctx, "no-such-model", anthropic.ModelGetParams{})
	var aerr *anthropic.Error
	if !errors.As(err, &aerr) || aerr.StatusCode != http.StatusNotFound || !strings.Contains(aerr.RawJSON(), "not_found_error") {
		t.Fatalf("Anthropic SDK models.retrieve(no-such-model) = %v, want 404 not_found_error", err)
	}
	for _, path := range []string{"/models/gpt-4o", "/v1/models/gpt-4o"} { // with and without /v1
		if code, _, body := send(t, "GET", path, "", map[string]string{"Authorization": "Bearer " + tn.Key}); code != http.StatusOK ||
			!strings.Contains(body, `"id":"gpt-4o"`) {
			t.Fatalf("GET %s = %d %s", path, code, body)
		}
	}
	if code, _, body := send(t, "GET", "/v1/models/a/b", "", map[string]string{"Authorization": "Bearer " + tn.Key}); code != http.StatusNotFound ||
		!strings.Contains(body, "Invalid URL") {
		t.Fatalf("GET /v1/models/a/b = %d %s, want the unknown path's 404", code, body)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, ids)
}
