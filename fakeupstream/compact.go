package fakeupstream

import (
	"encoding/json"
	"net/http"
	"strings"
)

// CompactSummary is the text of the one message the fake's POST /v1/responses/compact
// (OpenAI's remote compaction, which Codex calls) answers with.
const CompactSummary = "compacted by the fake upstream"

const compactSuffix = "/v1/responses/compact"

func isCompact(path string) bool { return strings.HasSuffix(path, compactSuffix) }

// serveCompact answers a compaction: {"object":"response.compaction","output":[one user
// message],"usage":{…}} with the credential's scripted usage (a script's Status >= 400 is
// answered as that error), so that a test can see the call billed like a Responses call.
func (s *Server) serveCompact(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.Method != http.MethodPost {
		writeError(w, apiOpenAI, http.StatusMethodNotAllowed, "Method not allowed, use POST")
		return
	}
	sc, err := s.scriptFor(r)
	if err != nil {
		writeError(w, apiOpenAI, http.StatusBadRequest, err.Error())
		return
	}
	if sc.Status >= 400 {
		writeError(w, apiOpenAI, sc.Status, errorMessage(sc.Status))
		return
	}
	var req requestFields
	if json.Unmarshal(body, &req) != nil || req.Model == "" {
		writeError(w, apiOpenAI, http.StatusBadRequest, "model is required")
		return
	}
	g := newGeneration(req, sc)
	out := map[string]any{
		"id": "cmp_" + randomID(12), "object": "response.compaction", "created_at": 0,
		"output": []any{map[string]any{"type": "message", "role": "user",
			"content": []any{map[string]any{"type": "input_text", "text": CompactSummary}}}},
		"usage": g.respUsage(),
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}
