package fakeupstream

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// CountTokensAnswer is the input_tokens the fake answers to every POST
// /v1/messages/count_tokens (Anthropic's free token counting), a number no local estimate
// of a small body gives, so that a test can tell a forwarded count from an estimate.
// Counting consumes no credential script; a "fail:<status>" credential gets that status.
const CountTokensAnswer = 4242

const countTokensSuffix = "/v1/messages/count_tokens"

func isCountTokens(path string) bool { return strings.HasSuffix(path, countTokensSuffix) }

func (s *Server) serveCountTokens(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.Method != http.MethodPost {
		writeError(w, apiMessages, http.StatusMethodNotAllowed, "Method not allowed, use POST")
		return
	}
	if sc, ok := failShorthand(credential(r)); ok {
		writeError(w, apiMessages, sc.Status, "scripted failure")
		return
	}
	var req struct {
		Model    string          `json:"model"`
		Messages json.RawMessage `json:"messages"`
	}
	if json.Unmarshal(body, &req) != nil || req.Model == "" || len(req.Messages) == 0 {
		writeError(w, apiMessages, http.StatusBadRequest, "model and messages are required")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"input_tokens":` + strconv.Itoa(CountTokensAnswer) + `}`))
}
