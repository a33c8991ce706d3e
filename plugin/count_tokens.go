package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/poolgate/poolgate/plugin/jsonsse"
)

// POST /v1/messages/count_tokens (docs/design.md, "POST /internal/v1/count-tokens").
// Upstream it is free, so it is never billed: no admission, no slot, no reservation, no
// report. The plugin asks controlsvc for an account (POST /internal/v1/count-tokens) and
// forwards the client's body to it; with no account, on another platform, on any failure or
// past countTokensTimeout it answers a local estimate. Never 404: Claude Code replaces a
// failed count with a real, billed request.

const countTokensControlPath = "/internal/v1/count-tokens"

// countTokensTimeout bounds the whole call, the control call and the upstream's answer
// included: when no account answers within 2 s the client gets the local estimate
// (docs/design.md, "Timeouts").
const countTokensTimeout = 2 * time.Second

// maxCountTokensReply bounds the upstream answer read: {"input_tokens": N} is tiny.
const maxCountTokensReply = 64 << 10

type countTokensCall struct {
	APIKey string `json:"api_key"`
	Model  string `json:"model"`
}

// countTokensAnswer is controlsvc's answer: an account, as a grant would carry it, or
// Estimate.
type countTokensAnswer struct {
	Estimate      bool              `json:"estimate"`
	AccountID     int64             `json:"account_id"`
	Platform      string            `json:"platform"`
	BaseURL       string            `json:"base_url"`
	Headers       map[string]string `json:"headers"`
	UpstreamModel string            `json:"upstream_model"`
	ForwardBetas  *string           `json:"forward_betas"`
	UserAgent     string            `json:"user_agent"`
}

// countTokensFields is what the body must have: Anthropic requires model and messages.
type countTokensFields struct {
	Model    json.RawMessage `json:"model"`
	Messages json.RawMessage `json:"messages"`
}

type inputTokens struct {
	InputTokens *int64 `json:"input_tokens"`
}

func serveCountTokens(p *Poolgate, rw http.ResponseWriter, req *http.Request) {
	requestID := newRequestID()
	key := extractAPIKey(req.Header)
	if !wellFormedKey(key) {
		writeShapedError(rw, shapeAnthropic, requestID, newClientError(http.StatusUnauthorized, typeAuthentication, msgInvalidAPIKey))
		return
	}
	body, e := readBody(req, p.maxBody)
	if e != nil {
		writeShapedError(rw, shapeAnthropic, requestID, e)
		return
	}
	model, e := validateCountTokens(body)
	if e != nil {
		writeShapedError(rw, shapeAnthropic, requestID, e)
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), countTokensTimeout)
	defer cancel()
	ans, rej := countTokensAccount(p, ctx, key, model)
	if rej != nil {
		writeRejection(rw, requestID, rej)
		return
	}
	if ans != nil {
		if reply, ok := forwardCountTokens(p, ctx, req, ans, body, model); ok {
			writeCountTokens(rw, requestID, reply)
			return
		}
	}
	writeCountTokens(rw, requestID, []byte(`{"input_tokens":`+strconv.FormatInt(estimateTokens(body), 10)+`}`))
}

// validateCountTokens checks the body is a JSON object with a model and a messages array.
func validateCountTokens(body []byte) (string, *clientError) {
	if !jsonValid(body) {
		return "", badRequest(msgParseBody)
	}
	var f countTokensFields
	if err := json.Unmarshal(body, &f); err != nil {
		return "", badRequest(msgModelRequired) // valid JSON that is not an object
	}
	model, ok := jsonsse.String(f.Model)
	if !ok || model == "" {
		return "", badRequest(msgModelRequired)
	}
	if len(model) > maxModelBytes {
		return "", badRequest(msgModelTooLong)
	}
	m := bytes.TrimLeft(f.Messages, " \t\r\n")
	if len(m) == 0 || m[0] != '[' {
		return "", badRequest(msgMessagesRequired)
	}
	return model, nil
}

// estimateTokens is the local estimate: a quarter of the body's bytes, rounded up, at least
// 1. Tokens run at about four bytes of English text; the JSON around the text makes it err
// high, which is the safe side for a client deciding when to compact.
func estimateTokens(body []byte) int64 {
	n := (int64(len(body)) + 3) / 4
	if n < 1 {
		return 1
	}
	return n
}

// countTokensAccount asks controlsvc for an account: nil (estimate) on an estimate answer or
// any failure, a rejection for a refused key.
func countTokensAccount(p *Poolgate, ctx context.Context, key, model string) (*countTokensAnswer, *rejection) {
	call, err := jsonsse.Encode(countTokensCall{APIKey: key, Model: model})
	if err != nil {
		return nil, nil
	}
	status, header, data, err := post(p.control.client, ctx, countTokensControlPath, call)
	if err != nil {
		return nil, nil
	}
	if status != http.StatusOK {
		if reason := header.Get(headerReject); reason != "" && status != http.StatusServiceUnavailable {
			ct := header.Get("Content-Type")
			if ct == "" {
				ct = "application/json"
			}
			return nil, &rejection{status: status, reason: reason, body: data, contentType: ct, retryAfter: header.Get("Retry-After")}
		}
		return nil, nil
	}
	var ans countTokensAnswer
	if err := json.Unmarshal(data, &ans); err != nil || ans.Estimate || ans.BaseURL == "" || ans.Platform != platformAnthropic {
		return nil, nil
	}
	return &ans, nil
}

// forwardCountTokens sends the client's body (its model mapped) to the account's
// count_tokens endpoint with the headers a /v1/messages attempt would carry; ok only for
// a 200 carrying input_tokens, whose body is relayed as it is.
func forwardCountTokens(p *Poolgate, ctx context.Context, req *http.Request, ans *countTokensAnswer, body []byte, model string) ([]byte, bool) {
	g := &grant{Platform: ans.Platform, AccountID: ans.AccountID, BaseURL: ans.BaseURL, Headers: ans.Headers,
		UpstreamModel: ans.UpstreamModel, ForwardBetas: ans.ForwardBetas, UserAgent: ans.UserAgent}
	sent := body
	if g.UpstreamModel != "" && g.UpstreamModel != model {
		b, err := rewriteBody(body, g.UpstreamModel, false, "", 0)
		if err != nil {
			return nil, false
		}
		sent = b
	}
	out, err := buildUpstreamRequest(ctx, req, pathCountTokens, g, sent)
	if err != nil {
		return nil, false
	}
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, false
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxCountTokensReply+1))
	if err != nil || len(data) > maxCountTokensReply {
		return nil, false
	}
	var it inputTokens
	if err := json.Unmarshal(data, &it); err != nil || it.InputTokens == nil || *it.InputTokens < 0 {
		return nil, false
	}
	return data, true
}

func writeCountTokens(rw http.ResponseWriter, requestID string, body []byte) {
	h := rw.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set(headerRequestID, requestID)
	rw.WriteHeader(http.StatusOK)
	_, _ = rw.Write(body)
}
