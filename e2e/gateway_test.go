package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

func jsonEqual(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func TestTraefikLoadedThePluginCleanly(t *testing.T) {
	// The stack only starts once the plugin answers; a broken plugin would have made every
	// plugin route a 404. Traefik must also have logged no plugin error at start.
	log := gw.Log("traefik")
	for _, line := range strings.Split(log, "\n") {
		l := strings.ToLower(line)
		if strings.Contains(l, "plugin") && (strings.Contains(l, "err") || strings.Contains(l, "disabled")) {
			t.Errorf("traefik logged a plugin problem: %s", line)
		}
	}
}

func TestRouting(t *testing.T) {
	tests := []struct {
		name, method, path string
		want               int
		admin              bool // on Traefik's admin entrypoint
	}{
		{"admin API needs the admin token", "GET", "/api/v1/admin/users", 401, true},
		{"admin API is not on the gateway entrypoint", "GET", "/api/v1/admin/users", 404, false},
		{"internal API is not routed publicly", "POST", "/internal/v1/admit", 404, false},
		{"reports API is not routed publicly", "POST", "/internal/v1/reports", 404, false},
		{"GET on an AI path is the plugin's 404", "GET", "/v1/responses", 404, false},
		{"routes without /v1 reach the plugin", "POST", "/responses", 401, false},
		{"GET /v1/usage stays controlsvc's", "GET", "/v1/usage", 401, false},
		{"alias path reaches the plugin", "POST", "/openai/v1/responses", 401, false},
		{"chat completions reach the plugin", "POST", "/v1/chat/completions", 401, false},
		{"messages reach the plugin", "POST", "/v1/messages", 401, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := gw.GatewayURL
			if tt.admin {
				base = gw.AdminURL
			}
			req, _ := http.NewRequest(tt.method, base+tt.path, strings.NewReader(`{}`))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("%s %s = %d, want %d", tt.method, tt.path, resp.StatusCode, tt.want)
			}
		})
	}
}

func TestValidationErrors(t *testing.T) {
	tn, accts := newTenant(t, accountSpec{Credential: unique("sk-val")})
	fco := func(items string) string { return `{"model":"gpt-4o","input":[` + items + `]}` }
	const needCallID = "function_call_output requires call_id or previous_response_id; if relying on history, ensure store=true and reuse previous_response_id"
	const needRef = "function_call_output requires item_reference ids matching each call_id, or previous_response_id/tool_call context; if relying on history, ensure store=true and reuse previous_response_id"
	tests := []struct {
		name, path, key, body string
		hdr                   map[string]string
		wantStatus            int
		wantType, wantMsg     string
	}{
		{"no key", "/v1/responses", "", responsesBody, nil, 401, "authentication_error", "Invalid API key"},
		{"unknown key", "/v1/responses", "sk-pg-unknown", responsesBody, nil, 401, "authentication_error", "Invalid API key"},
		{"empty body", "/v1/responses", tn.Key, "", nil, 400, "invalid_request_error", "Request body is empty"},
		{"invalid JSON", "/v1/responses", tn.Key, `{"model":`, nil, 400, "invalid_request_error", "Failed to parse request body"},
		{"model missing", "/v1/responses", tn.Key, `{"input":"hi"}`, nil, 400, "invalid_request_error", "model is required"},
		{"model empty", "/v1/chat/completions", tn.Key, `{"model":"","messages":[]}`, nil, 400, "invalid_request_error", "model is required"},
		{"model not a string", "/v1/responses", tn.Key, `{"model":42}`, nil, 400, "invalid_request_error", "model is required"},
		{"stream not a boolean", "/v1/responses", tn.Key, `{"model":"gpt-4o","stream":"yes"}`, nil, 400, "invalid_request_error", "invalid stream field type"},
		{"function_call_output without call_id", "/v1/responses", tn.Key, fco(`{"type":"function_call_output","output":"42"}`), nil, 400, "invalid_request_error", needCallID},
		{"function_call_output without item_reference", "/v1/responses", tn.Key, fco(`{"type":"function_call_output","call_id":"call_1","output":"42"}`), nil, 400, "invalid_request_error", needRef},
		{"x-api-key is accepted too", "/v1/responses", "", `{"input":"hi"}`, map[string]string{"x-api-key": tn.Key}, 400, "invalid_request_error", "model is required"},
		{"x-goog-api-key is accepted too", "/v1/responses", "", `{"input":"hi"}`, map[string]string{"x-goog-api-key": tn.Key}, 400, "invalid_request_error", "model is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, body := post(t, tt.path, tt.key, tt.body, tt.hdr)
			want := fmt.Sprintf(`{"error":{"type":%q,"message":%q}}`, tt.wantType, tt.wantMsg)
			if code != tt.wantStatus || !jsonEqual(body, want) {
				t.Errorf("got %d %s, want %d %s", code, body, tt.wantStatus, want)
			}
		})
	}
	t.Run("function_call_output with matching item_reference is forwarded", func(t *testing.T) {
		body := fco(`{"type":"item_reference","id":"call_1"},{"type":"function_call_output","call_id":"call_1","output":"42"}`)
		if code, _, resp := post(t, "/v1/responses", tn.Key, body, nil); code != 200 {
			t.Errorf("got %d %s", code, resp)
		}
	})
	t.Run("body over the limit", func(t *testing.T) {
		// 64 MiB is the configured limit; a body just over it is refused with 413.
		big := `{"model":"gpt-4o","input":"` + strings.Repeat("a", 64<<20) + `"}`
		code, _, resp := post(t, "/v1/responses", tn.Key, big, nil)
		want := `{"error":{"type":"invalid_request_error","message":"Request body too large, limit is 64MB"}}`
		if code != 413 || !jsonEqual(resp, want) {
			t.Errorf("got %d %.200s", code, resp)
		}
	})
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}

func TestUserConcurrencyLimit(t *testing.T) {
	cred := unique("sk-slow")
	programCredential(t, cred, obj{"delay_ms": 1500})
	tn, accts := newTenant(t, accountSpec{Credential: cred})
	mustAdmin(t, "PATCH", fmt.Sprintf("/users/%d", tn.UserID), obj{"concurrency": 1})
	time.Sleep(2500 * time.Millisecond) // user cache TTL

	first := make(chan int, 1)
	go func() {
		code, _, _ := post(t, "/v1/responses", tn.Key, responsesBody, nil)
		first <- code
	}()
	waitActive(t, "users", "user_id", tn.UserID, 1)
	// The second request waits in the user's queue and runs once the first ends.
	began := time.Now()
	code, _, body := post(t, "/v1/responses", tn.Key, responsesBody, nil)
	if code != 200 {
		t.Errorf("second concurrent request: %d %s", code, body)
	}
	if el := time.Since(began); el < 500*time.Millisecond {
		t.Errorf("second request answered after %s: it did not wait for the first", el)
	}
	if c := <-first; c != 200 {
		t.Errorf("first request: %d", c)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}

func waitActive(t *testing.T, list, field string, id int64, n float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		out := mustAdmin(t, "GET", "/concurrency", nil)
		items, _ := out[list].([]any)
		for _, it := range items {
			o := it.(obj)
			if int64(o[field].(float64)) == id && o["active"].(float64) >= n {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s %d never had %v active slots", list, id, n)
}

func TestClientDisconnectMidStreamFreesSlots(t *testing.T) {
	cred := unique("sk-stall")
	// Two events, then the upstream stalls with the connection open.
	programCredential(t, cred, obj{"stall_after_events": 5}) // the 5th (first delta) commits the stream
	tn, accts := newTenant(t, accountSpec{Credential: cred})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", gw.GatewayURL+"/v1/responses",
		strings.NewReader(`{"model":"gpt-4o-mini","input":"hi","stream":true}`))
	req.Header.Set("Authorization", "Bearer "+tn.Key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// Events arrive before the stream ends: SSE is flushed through Traefik, not buffered.
	sc := bufio.NewScanner(resp.Body)
	events := 0
	for events < 2 && sc.Scan() {
		if strings.HasPrefix(sc.Text(), "event: ") {
			events++
		}
	}
	if events < 2 {
		t.Fatalf("got %d events before the stall", events)
	}
	waitActive(t, "users", "user_id", tn.UserID, 1)
	cancel()
	resp.Body.Close()

	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
	rec := usageFor(t, tn.KeyID, 1)[0]
	if num(rec, "status") != 499 {
		t.Errorf("usage record of the aborted stream = %v", rec)
	}
}

func TestRevokedKeyStopsWithinFiveSeconds(t *testing.T) {
	tn, accts := newTenant(t, accountSpec{Credential: unique("sk-rev")})
	if code, _, body := post(t, "/v1/responses", tn.Key, responsesBody, nil); code != 200 {
		t.Fatalf("before revocation: %d %s", code, body)
	}
	mustAdmin(t, "DELETE", fmt.Sprintf("/api-keys/%d", tn.KeyID), nil)
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _, _ := post(t, "/v1/responses", tn.Key, responsesBody, nil)
		if code == 401 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deleted key still served after 5 s (status %d)", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}

func TestDisabledAccountStopsWithinFiveSeconds(t *testing.T) {
	cred := unique("sk-dis")
	tn, accts := newTenant(t, accountSpec{Credential: cred})
	if code, _, body := post(t, "/v1/responses", tn.Key, responsesBody, nil); code != 200 {
		t.Fatalf("before disabling: %d %s", code, body)
	}
	mustAdmin(t, "PATCH", fmt.Sprintf("/accounts/%d", accts[0]), obj{"status": "disabled"})
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _, body := post(t, "/v1/responses", tn.Key, responsesBody, nil)
		if code == 503 && jsonEqual(body, `{"error":{"type":"api_error","message":"Service temporarily unavailable"}}`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("disabled account still served after 5 s (%d %s)", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}
