package plugin

import (
	"net/http"
	"strings"
)

// The gateway's routes (docs/design.md, "Paths"). Traefik sends every path
// under the gateway's prefixes here, so that an unknown one gets a JSON 404 in its API's
// error shape rather than Traefik's plain text.
const (
	pathCountTokens = "/v1/messages/count_tokens"
	pathModels      = "/v1/models"
)

// unprefixed are the routes that also work without /v1 (clients whose base_url lacks it).
var unprefixed = map[string]bool{
	"/responses": true, "/responses/compact": true, "/chat/completions": true,
	"/messages": true, "/messages/count_tokens": true, "/models": true,
}

// ownedPrefixes are the path prefixes Traefik routes to the plugin (traefik-dynamic.yml);
// what the plugin does not serve under them answers 404.
var ownedPrefixes = []string{"/v1/", "/openai/", "/responses", "/chat/", "/messages", "/models"}

// normalisePath maps a client path to its /v1 form, first thing: /openai/v1/… is an alias
// of /v1/…, and the unprefixed routes (and /models/{id}) gain /v1. Every other path is
// returned as it is.
func normalisePath(p string) string {
	if strings.HasPrefix(p, "/openai/v1/") {
		return p[len("/openai"):]
	}
	if unprefixed[p] || strings.HasPrefix(p, "/models/") {
		return "/v1" + p
	}
	return p
}

// isExchangePath reports whether path (normalised) is served by a billed exchange; Codex's
// remote compaction is one (compact.go).
func isExchangePath(path string) bool {
	return path == pathResponses || path == pathChat || path == pathMessages || path == pathResponsesCompact
}

// ownsPath reports whether the raw client path is under the gateway's routes.
func ownsPath(p string) bool {
	if p == "/v1" {
		return true
	}
	for i := 0; i < len(ownedPrefixes); i++ {
		if strings.HasPrefix(p, ownedPrefixes[i]) {
			return true
		}
	}
	return false
}

// ServeHTTP dispatches on the normalised path and method; paths outside the gateway's
// routes go to next.
func (p *Poolgate) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	path := normalisePath(req.URL.Path)
	post := req.Method == http.MethodPost
	switch {
	case post && isExchangePath(path):
		x := newExchange(p, rw, req, path)
		defer finish(x)
		runExchange(x)
		if x.relay != nil {
			relayCommitted(x) // sse_relay.go: from here, with nothing else on the stack
		}
	case post && path == pathCountTokens:
		serveCountTokens(p, rw, req)
	case req.Method == http.MethodGet && path == pathModels:
		serveModels(p, rw, req, "")
	case req.Method == http.MethodGet && strings.HasPrefix(path, pathModels+"/"):
		if id, ok := modelID(path); ok {
			serveModels(p, rw, req, id)
		} else {
			writeUnknownPath(rw, req, path)
		}
	case ownsPath(req.URL.Path):
		writeUnknownPath(rw, req, path)
	default:
		p.next.ServeHTTP(rw, req)
	}
}

// anthropicClient reports whether a request looks like an Anthropic client's: the
// Anthropic API's own headers (docs/design.md, "Paths").
func anthropicClient(h http.Header) bool {
	return h.Get("Anthropic-Version") != "" || h.Get("X-Api-Key") != ""
}

// shapeFor is the error shape of a request on path (normalised): Anthropic's on the
// Messages routes or for an Anthropic client, OpenAI's elsewhere.
func shapeFor(path string, h http.Header) int {
	if path == pathMessages || strings.HasPrefix(path, pathMessages+"/") || anthropicClient(h) {
		return shapeAnthropic
	}
	return shapeOpenAI
}

// maxEchoedPath bounds the client path echoed in a 404's message.
const maxEchoedPath = 200

// writeUnknownPath answers 404 in the path's error shape, with OpenAI's own wording for an
// unknown route ("Invalid URL (POST /v1/foo)").
func writeUnknownPath(rw http.ResponseWriter, req *http.Request, path string) {
	shown := req.URL.Path
	if len(shown) > maxEchoedPath {
		shown = shown[:maxEchoedPath] + "..."
	}
	msg := "Invalid URL (" + req.Method + " " + shown + ")"
	typ := typeInvalidRequest
	shape := shapeFor(path, req.Header)
	if shape == shapeAnthropic {
		typ = "not_found_error"
	}
	writeShapedError(rw, shape, "", newClientError(http.StatusNotFound, typ, msg))
}
