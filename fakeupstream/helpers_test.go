package fakeupstream

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

func post(t *testing.T, ctx context.Context, url, key, body string, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return string(b)
}

func scriptHeader(t *testing.T, sc Script) map[string]string {
	t.Helper()
	b, err := json.Marshal(sc)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{ScriptHeader: string(b)}
}

const (
	respBody   = `{"model":"gpt-4o","input":"hi"}`
	respStream = `{"model":"gpt-4o","input":"hi","stream":true}`
	chatBody   = `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`
	chatStream = `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`
	msgBody    = `{"model":"claude","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`
	msgStream  = `{"model":"claude","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"stream":true}`
)

// frame is one SSE frame.
type frame struct {
	event string
	data  string
}

// readFrame reads the next SSE frame.
func readFrame(r *bufio.Reader) (frame, error) {
	var f frame
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return f, err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			return f, nil
		case strings.HasPrefix(line, "event: "):
			f.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			f.data = strings.TrimPrefix(line, "data: ")
		}
	}
}

func readFrames(t *testing.T, body io.Reader) ([]frame, error) {
	t.Helper()
	r := bufio.NewReader(body)
	var frames []frame
	for {
		f, err := readFrame(r)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return frames, nil
			}
			return frames, err
		}
		frames = append(frames, f)
	}
}
