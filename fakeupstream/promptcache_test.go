package fakeupstream

import (
	"context"
	"encoding/json"
	"testing"
)

// TestPromptCache: with PromptCache, the first /v1/messages request with breakpoints writes
// the cache and later ones read it; requests without breakpoints read nothing.
func TestPromptCache(t *testing.T) {
	t.Parallel()
	s, ts := startFake(t)
	s.SetCredentialScript("k-cache", Script{PromptCache: 80, Usage: &Usage{InputTokens: 20, OutputTokens: 3}})
	const cached = `{"model":"claude","max_tokens":10,"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]}]}`
	const plain = `{"model":"claude","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`
	cases := []struct {
		name               string
		body               string
		input, write, read int
	}{
		{"without breakpoints", plain, 20, 0, 0},
		{"first with breakpoints writes", cached, 20, 80, 0},
		{"second reads", cached, 20, 0, 80},
		{"third reads", cached, 20, 0, 80},
	}
	for _, tc := range cases {
		resp := post(t, context.Background(), ts.URL+"/v1/messages", "k-cache", tc.body, nil)
		var m struct {
			Usage struct {
				Input int `json:"input_tokens"`
				Write int `json:"cache_creation_input_tokens"`
				Read  int `json:"cache_read_input_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal([]byte(readAll(t, resp)), &m); err != nil {
			t.Fatal(err)
		}
		if m.Usage.Input != tc.input || m.Usage.Write != tc.write || m.Usage.Read != tc.read {
			t.Errorf("%s: usage %+v, want input %d write %d read %d", tc.name, m.Usage, tc.input, tc.write, tc.read)
		}
	}
}
