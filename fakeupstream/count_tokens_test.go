package fakeupstream

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCountTokens(t *testing.T) {
	srv := httptest.NewServer(New())
	defer srv.Close()
	tests := []struct {
		name, key, body string
		status          int
		want            string
	}{
		{"counted", "sk-a", `{"model":"claude-x","messages":[{"role":"user","content":"hi"}]}`, 200, `{"input_tokens":4242}`},
		{"no messages", "sk-a", `{"model":"claude-x"}`, 400, ""},
		{"scripted failure", "fail:503", `{"model":"claude-x","messages":[]}`, 503, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/messages/count_tokens?beta=true", strings.NewReader(tt.body))
			req.Header.Set("x-api-key", tt.key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || (tt.want != "" && string(b) != tt.want) {
				t.Fatalf("got %d %s, want %d %s", resp.StatusCode, b, tt.status, tt.want)
			}
		})
	}
}
