package plugin

import (
	"net/http"
	"strings"
)

// Header hygiene (docs/design.md, "Forwarded headers"). Both directions are
// allowlists: a header nobody listed here never crosses the gateway, whatever a client or
// an upstream invents. Upstream requests carry the provider headers below, the beta tokens
// the group allows, the User-Agent the group decides, and then the grant's headers (the
// account's credential and its fixed headers). Client responses carry Content-Type,
// Retry-After, the upstream's request id as x-upstream-request-id and the gateway's own
// X-Poolgate-* headers. The lists are package-level and canonical, so that per request the
// work is one header lookup per listed name.

const (
	platformAnthropic = "anthropic"

	headerUpstreamRequestID = "X-Upstream-Request-Id"
	headerUserAgent         = "User-Agent"
	headerAnthropicBeta     = "Anthropic-Beta"
	headerOpenAIBeta        = "Openai-Beta"
)

// canonical returns the names in the form net/http keys headers by.
func canonical(names ...string) []string {
	out := make([]string, len(names))
	for i := 0; i < len(names); i++ {
		out[i] = http.CanonicalHeaderKey(names[i])
	}
	return out
}

// Client headers forwarded as they are: to every upstream, and per platform the API's own
// version header and the session headers its clients send (Claude Code names its session
// in X-Claude-Code-Session-Id, Codex CLI in session_id/session-id, conversation_id and
// thread-id), which the provider uses to keep a conversation on one cache.
var (
	forwardedCommon    = canonical("Content-Type", "Accept")
	forwardedOpenAI    = canonical("session_id", "session-id", "conversation_id", "thread-id")
	forwardedAnthropic = canonical("anthropic-version", "X-Claude-Code-Session-Id")
)

// defaultAnthropicBetas are the anthropic-beta tokens a group without forward_betas lets
// through: those current Claude Code and the official Anthropic SDKs send. oauth-* tokens
// are never forwarded (forwardBetas): an account authenticates with an API key.
var defaultAnthropicBetas = tokenSet(
	"claude-code-20250219",
	"interleaved-thinking-2025-05-14",
	"fine-grained-tool-streaming-2025-05-14",
	"context-1m-2025-08-07",
	"context-management-2025-06-27",
	"effort-2025-11-24",
	"prompt-caching-2024-07-31",
	"prompt-caching-scope-2026-01-05",
	"extended-cache-ttl-2025-04-11",
	"token-efficient-tools-2025-02-19",
	"output-128k-2025-02-19",
	"structured-outputs-2025-11-13",
	"structured-outputs-2025-12-15",
	"advanced-tool-use-2025-11-20",
	"tool-search-tool-2025-10-19",
	"web-fetch-2025-09-10",
	"web-search-2025-03-05",
	"code-execution-2025-05-22",
	"code-execution-2025-08-25",
	"files-api-2025-04-14",
	"pdfs-2024-09-25",
	"token-counting-2024-11-01",
	"computer-use-2025-01-24",
	"computer-use-2025-11-24",
	"mcp-client-2025-04-04",
	"mcp-client-2025-11-20",
	"skills-2025-10-02",
	"redact-thinking-2026-02-12",
	"thinking-token-count-2026-05-13",
	"mid-conversation-system-2026-04-07",
	"mid-conversation-system-clear-at-2026-08-21",
	"mid-conversation-tool-changes-2026-07-01",
	"per-turn-control-2026-07-01",
	"inline-tools-2026-09-15",
	"advisor-tool-2026-03-01",
	"thinking-binding-controls-2026-08-01",
	"thinking-display-updates-2026-08-18",
	"cache-diagnosis-2026-04-07",
	"message-threads-2026-08-12",
	"dangerous-tool-use-2026-09-03",
)

// defaultOpenAIBetas are the OpenAI-Beta values a group without forward_betas lets through:
// those Codex CLI and the official OpenAI SDKs send.
var defaultOpenAIBetas = tokenSet(
	"responses=experimental",
	"responses=v1",
	"responses-api=v1",
	"responses_websockets=2026-02-06",
	"assistants=v2",
)

func tokenSet(tokens ...string) map[string]bool {
	m := make(map[string]bool, len(tokens))
	for i := 0; i < len(tokens); i++ {
		m[tokens[i]] = true
	}
	return m
}

// upstreamRequestIDHeaders name the upstream's request id: OpenAI's x-request-id,
// Anthropic's request-id.
var upstreamRequestIDHeaders = canonical("x-request-id", "request-id")

// copyListed sets the headers named in names (canonical) of src on dst. The value slices
// are shared, not cloned (a clone per header per attempt is most of an attempt's header
// work under Yaegi): nothing changes a header value in place, and the slice is capped at
// its length, so that an append to dst's copy allocates instead of writing into src's.
func copyListed(dst, src http.Header, names []string) {
	for i := 0; i < len(names); i++ {
		if vv := src[names[i]]; len(vv) > 0 {
			dst[names[i]] = vv[:len(vv):len(vv)]
		}
	}
}

// forwardRequestHeaders sets on out what the upstream request carries of the client's
// headers under g: the listed headers of its platform, its beta tokens through the
// group's allowlist, and the User-Agent by the group's policy. The grant's own headers are
// set after this (applyGrantHeaders).
func forwardRequestHeaders(out, client http.Header, g *grant) {
	copyListed(out, client, forwardedCommon)
	if g.Platform == platformAnthropic {
		copyListed(out, client, forwardedAnthropic)
		forwardBetas(out, headerAnthropicBeta, client[headerAnthropicBeta], g, defaultAnthropicBetas)
	} else {
		copyListed(out, client, forwardedOpenAI)
		forwardBetas(out, headerOpenAIBeta, client[headerOpenAIBeta], g, defaultOpenAIBetas)
	}
	setUserAgent(out, client, g)
}

// setUserAgent applies the group's policy: its fixed string, else the client's own
// User-Agent. A client that sent none sends none upstream: the empty value keeps Go's
// transport from adding its default.
func setUserAgent(out, client http.Header, g *grant) {
	if g.UserAgent != "" {
		out[headerUserAgent] = []string{g.UserAgent}
		return
	}
	if vv := client[headerUserAgent]; len(vv) > 0 {
		out[headerUserAgent] = vv[:1:1] // the first, as Get has it; shared as in copyListed
		return
	}
	out[headerUserAgent] = noUserAgent
}

// noUserAgent is the empty User-Agent (shared: the transport only reads it).
var noUserAgent = []string{""}

// applyGrantHeaders sets the grant's headers: the account's credential and fixed headers.
// They win over anything forwarded from the client.
func applyGrantHeaders(out http.Header, g *grant) {
	for k, v := range g.Headers {
		out.Set(k, v)
	}
}

// forwardBetas sets name to the comma-separated tokens of values the group allows: its
// forward_betas (a comma-separated list; "" = none), else the default set. oauth-* tokens
// never pass, and a header left with no token is not sent.
func forwardBetas(out http.Header, name string, values []string, g *grant, defaults map[string]bool) {
	if len(values) == 0 {
		return
	}
	if len(values) == 1 && g.ForwardBetas == nil && defaults[values[0]] {
		// One default token as the client sent it, the common case (Codex's
		// responses=experimental): passed on as it is, without splitting.
		out[name] = values[:1:1]
		return
	}
	custom := ""
	if g.ForwardBetas != nil {
		if *g.ForwardBetas == "" {
			return
		}
		custom = "," + *g.ForwardBetas + ","
	}
	kept := ""
	for i := 0; i < len(values); i++ {
		parts := strings.Split(values[i], ",")
		for j := 0; j < len(parts); j++ {
			tok := strings.TrimSpace(parts[j])
			if tok == "" || strings.HasPrefix(tok, "oauth-") {
				continue
			}
			ok := false
			if custom != "" {
				ok = strings.Contains(custom, ","+tok+",")
			} else {
				ok = defaults[tok]
			}
			if !ok {
				continue
			}
			if kept != "" {
				kept += ","
			}
			kept += tok
		}
	}
	if kept != "" {
		out[name] = []string{kept}
	}
}

// forwardedResponseHeaders are the upstream response headers a client sees as they are.
var forwardedResponseHeaders = canonical("Content-Type", "Retry-After")

// copyResponseHeaders sets on dst what a client sees of an upstream response's headers:
// the listed ones, Content-Length unless the body is relayed as a stream (an error frame
// may be appended), and the upstream's request id as x-upstream-request-id.
func copyResponseHeaders(dst, src http.Header, stream bool) {
	copyListed(dst, src, forwardedResponseHeaders)
	if !stream {
		if vv := src["Content-Length"]; len(vv) == 1 {
			dst["Content-Length"] = []string{vv[0]}
		}
	}
	if id := upstreamRequestID(src); id != "" {
		dst[headerUpstreamRequestID] = []string{id}
	}
}

// maxUpstreamRequestID bounds the id passed on; real ones are a few dozen bytes.
const maxUpstreamRequestID = 256

// upstreamRequestID is the upstream's id of its answer ("" = none or too long).
func upstreamRequestID(h http.Header) string {
	for i := 0; i < len(upstreamRequestIDHeaders); i++ {
		if vv := h[upstreamRequestIDHeaders[i]]; len(vv) > 0 && vv[0] != "" && len(vv[0]) <= maxUpstreamRequestID {
			return vv[0]
		}
	}
	return ""
}
