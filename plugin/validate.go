package plugin

import (
	"bytes"
	"io"
	"net/http"
	"strings"

	"github.com/poolgate/poolgate/plugin/jsonsse"
)

// Normalised endpoint paths, as sent to controlsvc and appended to an account's base_url.
const (
	pathResponses = "/v1/responses"
	pathChat      = "/v1/chat/completions"
	pathMessages  = "/v1/messages"
)

// usageFormatFor tells controlsvc how to read the usage object of an endpoint's replies.
func usageFormatFor(path string) string {
	switch path {
	case pathChat:
		return usageChat
	case pathMessages:
		return usageAnthropic
	}
	return usageResponses
}

// extractAPIKey returns the client's key from, in this order, "Authorization: Bearer",
// x-api-key and x-goog-api-key (the headers the supported clients send their key in), or
// "" when there is none.
func extractAPIKey(h http.Header) string {
	if v := h.Get("Authorization"); len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		if k := strings.TrimSpace(v[7:]); k != "" {
			return k
		}
	}
	if k := strings.TrimSpace(h.Get("X-Api-Key")); k != "" {
		return k
	}
	return strings.TrimSpace(h.Get("X-Goog-Api-Key"))
}

// The gateway's key format (controlsvc store/apikeys.go): a fixed prefix and 24 random
// bytes in lowercase hex. Anything else cannot be a key, so it is refused before the body.
const (
	keyPrefix    = "sk-pg-"
	keyHexDigits = 48
)

// wellFormedKey reports whether k has the gateway's key format. It is the cheap check that
// runs before a single body byte is read: a made-up key costs no memory and no admit call.
func wellFormedKey(k string) bool {
	if len(k) != len(keyPrefix)+keyHexDigits || k[:len(keyPrefix)] != keyPrefix {
		return false
	}
	return strings.Trim(k[len(keyPrefix):], "0123456789abcdef") == ""
}

// maxModelBytes bounds the model name, as controlsvc does (gateway/ledger MaxModelLen, ValidModel).
const maxModelBytes = 256

// bodyReadChunk is the largest first allocation of a body read; bytes.Buffer then doubles
// it as the bytes arrive.
const bodyReadChunk = 32 << 10

// readBody reads at most limit bytes of the request body. The buffer grows with the bytes
// that really arrive: Content-Length refuses a body announced over the limit and sizes the
// first allocation only up to bodyReadChunk (firstBodyAlloc), so a client that announces
// 256 MB and sends nothing costs nothing.
// The buffer is not pooled: the body of an attempt may still be read by the transport's
// write loop after the exchange ended (an upstream that answers before reading it).
func readBody(req *http.Request, limit int64) ([]byte, *clientError) {
	if req.ContentLength > limit {
		return nil, bodyTooLarge(limit)
	}
	if req.Body == nil {
		return nil, badRequest(msgEmptyBody)
	}
	var buf bytes.Buffer
	buf.Grow(firstBodyAlloc(req.ContentLength))
	if _, err := buf.ReadFrom(io.LimitReader(req.Body, limit+1)); err != nil {
		return nil, badRequest(msgReadBody)
	}
	if int64(buf.Len()) > limit {
		return nil, bodyTooLarge(limit)
	}
	if buf.Len() == 0 {
		return nil, badRequest(msgEmptyBody)
	}
	b := buf.Bytes()
	if len(b) > bodyReadChunk && cap(b)-len(b) > len(b)/4 {
		// The upstream request keeps the body for the stream's whole life: not the spare
		// room of the buffer's doublings, up to as much again (one compiled copy).
		b = bytes.Clone(b)
	}
	return b, nil
}

// firstBodyAlloc is the first allocation of a body read: a known Content-Length plus the
// room ReadFrom wants free to see the end (bytes.MinRead), at most bodyReadChunk. The body
// lives as long as its request, a stream's whole life (docs/design.md, "Memory per open
// stream"), so a small body must not hold a 32 KB buffer; an announced size that never
// arrives still costs at most bodyReadChunk.
func firstBodyAlloc(contentLength int64) int {
	if contentLength < 0 || contentLength > bodyReadChunk-bytes.MinRead {
		return bodyReadChunk
	}
	return int(contentLength) + bytes.MinRead
}

// requestInfo is what the plugin needs from a valid request body.
type requestInfo struct {
	model  string
	stream bool
	// forceIncludeUsage: a streaming Chat Completions request without
	// stream_options.include_usage=true gets it set, so that its usage can be billed.
	forceIncludeUsage bool
	// maxOutputTokens is the output maximum the body names (0: none), sent at admission
	// for the cost estimate.
	maxOutputTokens int64
	// fields are the body's decoded top-level fields, kept so that the session seed
	// (session.go) does not decode the body again.
	fields requestFields
	// items caches the decoded Responses input array (inputItems).
	items     []inputItem
	itemsOK   bool
	itemsRead bool
}

// inputItems decodes the Responses input array on first use; ok is false when input is not
// an array of objects.
func inputItems(info *requestInfo) ([]inputItem, bool) {
	if !info.itemsRead {
		info.itemsRead = true
		info.items, info.itemsOK = decodeInputItems(info.fields.Input)
	}
	return info.items, info.itemsOK
}

// validateBody applies the body checks in the order their errors take precedence: JSON
// syntax, model, stream's type, then the per-path checks.
func validateBody(path string, body []byte) (requestInfo, *clientError) {
	var info requestInfo
	f, err := parseRequestFields(body) // the one pass: validates while it decodes
	if err != nil {
		if !jsonValid(body) {
			return info, badRequest(msgParseBody)
		}
		// Valid JSON that is not an object has no model.
		return info, badRequest(msgModelRequired)
	}
	model, ok := jsonsse.String(f.Model)
	if !ok || model == "" {
		return info, badRequest(msgModelRequired)
	}
	if len(model) > maxModelBytes {
		// controlsvc refuses it too (400 invalid); refusing here spares the admit call.
		return info, badRequest(msgModelTooLong)
	}
	info.model = model
	info.fields = f
	if len(f.Stream) > 0 {
		stream, ok := jsonsse.Bool(f.Stream)
		if !ok {
			return info, badRequest(msgStreamType)
		}
		info.stream = stream
	}
	if path == pathResponsesCompact {
		info.stream = false // the compaction answer is one JSON object
	}
	if path == pathResponses {
		if e := checkFunctionCallOutputs(&info); e != nil {
			return info, e
		}
	}
	info.forceIncludeUsage = path == pathChat && info.stream && !includeUsageSet(f.StreamOptions)
	info.maxOutputTokens = maxOutputTokens(path, &f)
	return info, nil
}

// maxOutputTokens is the output maximum the body names for its endpoint, 0 when it names
// none. Chat Completions has two names for it (max_tokens is the deprecated one); the larger
// counts, as the estimate should rather be high.
func maxOutputTokens(path string, f *requestFields) int64 {
	switch path {
	case pathResponses:
		return rawCount(f.MaxOutputTokens)
	case pathChat:
		n, m := rawCount(f.MaxCompletionTokens), rawCount(f.MaxTokens)
		if m > n {
			return m
		}
		return n
	}
	return rawCount(f.MaxTokens)
}

// checkFunctionCallOutputs rejects function_call_output items that cannot be tied to a
// call: without previous_response_id and without a function_call item carrying a call_id,
// every output needs a call_id, and every call_id needs a matching item_reference.
func checkFunctionCallOutputs(info *requestInfo) *clientError {
	f := &info.fields
	if !bytes.Contains(f.Input, []byte("function_call_output")) {
		return nil
	}
	if prev, _ := jsonsse.String(f.PreviousResponseID); prev != "" {
		return nil
	}
	items, ok := inputItems(info)
	if !ok {
		return nil
	}
	var callIDs []string
	var refs map[string]bool // made at the first item_reference: most inputs have none
	hasOutput := false
	missingCallID := false
	for i := 0; i < len(items); i++ {
		it := &items[i]
		switch it.Type {
		case "function_call":
			if it.CallID != "" {
				return nil // tool-call context present in this request
			}
		case "function_call_output":
			hasOutput = true
			if it.CallID == "" {
				missingCallID = true
			} else {
				callIDs = append(callIDs, it.CallID)
			}
		case "item_reference":
			if it.ID != "" {
				if refs == nil {
					refs = make(map[string]bool)
				}
				refs[it.ID] = true
			}
		}
	}
	if !hasOutput {
		return nil
	}
	if missingCallID {
		return badRequest(msgCallIDRequired)
	}
	for i := 0; i < len(callIDs); i++ {
		if !refs[callIDs[i]] {
			return badRequest(msgItemReference)
		}
	}
	return nil
}
