package gateway

import (
	"net/http"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"
)

// POST /internal/v1/count-tokens (docs/design.md, "POST /internal/v1/count-tokens"): the
// account choice is admission's (admission.CountTokens); this is its HTTP side.

// maxCountTokensBody bounds the call: it carries a key and a model name, never the prompt.
const maxCountTokensBody = 4 << 10

func (s *Service) handleCountTokens(w http.ResponseWriter, r *http.Request) {
	var req admission.CountTokensRequest
	if err := decodeBody(w, r, maxCountTokensBody, &req); err != nil {
		writeReject(w, admission.AnthropicPath, "", admission.RejectInvalid("Failed to parse count-tokens request"))
		return
	}
	reply, rej, err := s.adm.CountTokens(r.Context(), req)
	switch {
	case err != nil:
		writeInternalError(w, s.log, "choosing a count_tokens account", err)
	case rej != nil:
		writeReject(w, admission.AnthropicPath, admission.PlatformAnthropic, rej)
	default:
		writeJSON(w, http.StatusOK, reply)
	}
}
