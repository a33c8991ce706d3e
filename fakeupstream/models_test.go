package fakeupstream

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// A credential script with per-model entries answers each model by its entry, and any
// other model by the script itself.
func TestModelScripts(t *testing.T) {
	t.Parallel()
	_, ts := startFake(t)
	script := `{"text":"any model","models":{"small":{"status":400,"body":{"error":{"code":"context_length_exceeded"}}}}}`
	req, _ := http.NewRequest(http.MethodPut, ts.URL+"/_fake/credentials/sk-models", strings.NewReader(script))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("PUT script: %d", resp.StatusCode)
	}
	tests := []struct {
		name, model string
		status      int
		contains    string
	}{
		{name: "the model with an entry", model: "small", status: 400, contains: "context_length_exceeded"},
		{name: "another model", model: "big", status: 200, contains: "any model"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := post(t, context.Background(), ts.URL+"/v1/chat/completions", "sk-models",
				`{"model":"`+tt.model+`","messages":[{"role":"user","content":"hi"}]}`, nil)
			body := readAll(t, resp)
			if resp.StatusCode != tt.status || !strings.Contains(body, tt.contains) {
				t.Fatalf("%d %s, want %d containing %q", resp.StatusCode, body, tt.status, tt.contains)
			}
		})
	}
}
