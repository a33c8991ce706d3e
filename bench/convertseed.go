package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/poolgate/poolgate/internal/stack"
)

// The convert part's groups, accounts, keys and fake-upstream scripts (convert.go).

// seedConvert creates a user and, per mode, an anthropic and an openai group with one
// fake-upstream account each and a key on each, programs the accounts' credentials on the
// fake upstream to stream the long answer, and returns the cases.
func seedConvert(st *stack.Stack, conc int, gw, plain traefikProc) ([]streamCase, error) {
	u, err := adminPost(st, "/users", map[string]any{"name": "bench-convert", "concurrency": conc * slotHeadroom, "balance_usd": 1000000})
	if err != nil {
		return nil, err
	}
	const prompt = "Write a long story about load testing."
	responses := func(model string) string {
		return `{"model":"` + model + `","input":"` + prompt + `","stream":true}`
	}
	var cases []streamCase
	for _, mode := range []string{"burst", "paced"} {
		delay := 0
		if mode == "paced" {
			delay = pacedDelayMS
		}
		keys, creds := map[string]string{}, map[string]string{}
		for _, platform := range []string{"anthropic", "openai"} {
			name := "bench-convert-" + platform + "-" + mode
			g, err := adminPost(st, "/groups", map[string]any{"name": name, "platform": platform})
			if err != nil {
				return nil, err
			}
			creds[platform] = "sk-" + name
			if _, err := adminPost(st, "/accounts", map[string]any{
				"name": name, "platform": platform, "base_url": st.FakeURL,
				"credential": map[string]any{"api_key": creds[platform]}, "concurrency": conc * slotHeadroom,
				"group_ids": []any{g["id"]},
			}); err != nil {
				return nil, err
			}
			script := map[string]any{"text": convText(convDeltas), "chunk_delay_ms": delay}
			if err := fakePut(st, "/_fake/credentials/"+url.PathEscape(creds[platform]), script); err != nil {
				return nil, err
			}
			k, err := adminPost(st, "/api-keys", map[string]any{"user_id": u["id"], "group_id": g["id"], "name": name})
			if err != nil {
				return nil, err
			}
			keys[platform], _ = k["key"].(string)
		}
		// Events around the deltas: message_start, content_block_start, ping |
		// content_block_stop, message_delta, message_stop; created, in_progress,
		// output_item.added, content_part.added | output_text.done, content_part.done,
		// output_item.done, completed.
		messages := `{"model":"claude-sonnet-4-5","max_tokens":8192,"stream":true,"messages":[{"role":"user","content":"` + prompt + `"}]}`
		cases = append(cases,
			// The plain Traefik forwards the client's Authorization: the credential itself.
			streamCase{name: plainCase, mode: mode, base: plain.url, pid: plain.pid, path: "/v1/messages",
				key: creds["anthropic"], cred: creds["anthropic"], body: messages, tolerateAborts: true,
				deltaEvent: "content_block_delta", lastEvent: "message_stop", events: convDeltas + 6, upstreamPath: "/v1/messages"},
			streamCase{name: "messages pass-through", mode: mode, base: gw.url, pid: gw.pid, path: "/v1/messages", key: keys["anthropic"], cred: creds["anthropic"],
				body: messages, deltaEvent: "content_block_delta", lastEvent: "message_stop", events: convDeltas + 6, upstreamPath: "/v1/messages"},
			streamCase{name: "responses pass-through", mode: mode, base: gw.url, pid: gw.pid, path: "/v1/responses", key: keys["openai"], cred: creds["openai"],
				body:       responses("gpt-4o-mini"),
				deltaEvent: "response.output_text.delta", lastEvent: "response.completed", events: convDeltas + 8,
				responses: true, upstreamPath: "/v1/responses"},
			streamCase{name: "responses converted", mode: mode, base: gw.url, pid: gw.pid, path: "/v1/responses", key: keys["anthropic"], cred: creds["anthropic"],
				body:       responses("claude-sonnet-4-5"),
				deltaEvent: "response.output_text.delta", lastEvent: "response.completed", events: convDeltas + 8,
				responses: true, upstreamPath: "/v1/messages"},
		)
	}
	return cases, nil
}

// convText is n words; the fake upstream streams each word as one delta.
func convText(n int) string {
	words := []string{"Streams", "of", "events", "flow", "through", "the", "gateway,", "one", "delta", "at", "a", "time."}
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[i%len(words)])
	}
	return b.String()
}

func fakePut(st *stack.Stack, path string, body any) error {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPut, st.FakeURL+path, bytes.NewReader(b))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("PUT %s on the fake upstream: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("PUT %s on the fake upstream: %s", path, resp.Status)
	}
	return nil
}
