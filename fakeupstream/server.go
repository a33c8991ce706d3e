// Package fakeupstream is a programmable fake of the upstream AI providers:
// OpenAI Responses and Chat Completions and Anthropic Messages, streaming and
// not, in their wire formats. Tests choose per request (header
// X-Fake-Script) or per credential (PUT /_fake/credentials/{api_key}) the
// status, headers, body, delays, stream cuts and stalls, and read back what
// the fake received (GET /_fake/requests). Through the gateway only credential
// scripts work: the plugin forwards no X-Fake-Script header (docs/design.md,
// "Forwarded headers").
package fakeupstream

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"strings"
	"sync"
)

// ScriptHeader carries a per-request Script as JSON.
const ScriptHeader = "X-Fake-Script"

// DefaultMaxRecorded is how many requests a new Server keeps in its log.
const DefaultMaxRecorded = 1000

// Server is the fake upstream. Create it with New; it is an http.Handler.
type Server struct {
	// MaxRecorded bounds the request log (oldest dropped first); 0 turns
	// recording off. Set it before serving.
	MaxRecorded int
	// Logger, when set, gets one line per request. Nil (the default) keeps
	// the hot path free of logging.
	Logger *log.Logger

	creds    credentialScripts
	recorder recorder
	cache    promptCache // promptcache.go

	closeOnce sync.Once
	closed    chan struct{}
}

// New returns a Server answering every request with the default script.
func New() *Server {
	return &Server{MaxRecorded: DefaultMaxRecorded, closed: make(chan struct{})}
}

// Close releases every stalled response so the HTTP server can shut down.
// The Server keeps answering other requests.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
}

// SetCredentialScript programs the answers for requests carrying apiKey.
func (s *Server) SetCredentialScript(apiKey string, sc Script) { s.creds.set(apiKey, sc) }

// ClearCredentialScript returns apiKey to the default answer.
func (s *Server) ClearCredentialScript(apiKey string) { s.creds.remove(apiKey) }

// Reset forgets every credential script and the request log.
func (s *Server) Reset() {
	s.creds.reset()
	s.recorder.clear()
	s.cache.reset()
}

// Requests returns the logged requests, oldest first.
func (s *Server) Requests() []RecordedRequest { return s.recorder.list() }

// ClearRequests empties the request log.
func (s *Server) ClearRequests() { s.recorder.clear() }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_fake/") {
		s.serveControl(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, apiOpenAI, http.StatusBadRequest, "could not read the request body")
		return
	}
	// Recorded before routing, so tests can see wrongly rewritten paths.
	s.recorder.add(r, body, s.MaxRecorded)
	if s.Logger != nil {
		s.Logger.Printf("%s %s key=%s bytes=%d", r.Method, r.URL.Path, redact(credential(r)), len(body))
	}
	if isCountTokens(r.URL.Path) {
		s.serveCountTokens(w, r, body)
		return
	}
	if isCompact(r.URL.Path) {
		s.serveCompact(w, r, body)
		return
	}
	api, ok := apiFor(r.URL.Path)
	if !ok {
		writeError(w, apiOpenAI, http.StatusNotFound, fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path))
		return
	}
	if r.Method != http.MethodPost {
		writeError(w, api, http.StatusMethodNotAllowed, "Method not allowed, use POST")
		return
	}
	sc, err := s.scriptFor(r)
	if err != nil {
		writeError(w, api, http.StatusBadRequest, err.Error())
		return
	}
	s.respond(w, r, api, s.withPromptCache(api, credential(r), body, sc.forModel(body).forToolResult(api, body)), body)
}

// scriptFor picks the script of a request: its X-Fake-Script header, else
// its credential's script, else the "fail:<status>" shorthand, else the
// default.
func (s *Server) scriptFor(r *http.Request) (Script, error) {
	if h := r.Header.Get(ScriptHeader); h != "" {
		sc, err := ParseScript([]byte(h))
		if err != nil {
			return Script{}, fmt.Errorf("invalid %s header: %v", ScriptHeader, err)
		}
		return sc, nil
	}
	key := credential(r)
	if sc, ok := s.creds.take(key); ok {
		return sc, nil
	}
	if sc, ok := failShorthand(key); ok {
		return sc, nil
	}
	return Script{}, nil
}

// api names the wire format of an endpoint.
type api int

const (
	apiOpenAI api = iota // errors only: paths that are not one of the below
	apiResponses
	apiChat
	apiMessages
)

// apiFor matches on the path suffix so that base URLs with a path prefix
// (http://host/prefix/v1/responses) work too.
func apiFor(path string) (api, bool) {
	switch {
	case strings.HasSuffix(path, "/v1/responses"):
		return apiResponses, true
	case strings.HasSuffix(path, "/v1/chat/completions"):
		return apiChat, true
	case strings.HasSuffix(path, "/v1/messages"):
		return apiMessages, true
	}
	return apiOpenAI, false
}

// requestFields are the parts of a request body the fake looks at.
type requestFields struct {
	Model         string `json:"model"`
	Stream        bool   `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

func (s *Server) respond(w http.ResponseWriter, r *http.Request, a api, sc Script, body []byte) {
	var req requestFields
	parseErr := json.Unmarshal(body, &req)
	if sc.DelayMS > 0 && !s.sleep(r, sc.DelayMS) {
		return
	}
	if sc.ResetBeforeHeaders {
		cut()
	}
	for k, v := range sc.Headers {
		w.Header().Set(k, v)
	}
	status := sc.status()
	switch {
	case sc.Body != "" && status < 400 && parseErr == nil && req.Stream:
		s.writeRawStream(w, r, sc, status)
	case sc.Body != "":
		s.writeRaw(w, r, sc, status)
	case status >= 400:
		writeError(w, a, status, errorMessage(status))
	case parseErr != nil:
		writeError(w, a, http.StatusBadRequest, "We could not parse the JSON body of your request.")
	case req.Model == "":
		writeError(w, a, http.StatusBadRequest, "you must provide a model parameter")
	case sc.ToolCall != nil:
		s.respondToolCall(w, r, a, sc, status, newGeneration(req, sc), req)
	default:
		g := newGeneration(req, sc)
		switch {
		case a == apiResponses && req.Stream:
			s.streamResponses(w, r, sc, status, g)
		case a == apiResponses:
			s.writeJSON(w, r, sc, status, g.response("completed", true))
		case a == apiChat && req.Stream:
			s.streamChat(w, r, sc, status, g, req.StreamOptions != nil && req.StreamOptions.IncludeUsage)
		case a == apiChat:
			s.writeJSON(w, r, sc, status, g.chatCompletion())
		case req.Stream:
			s.streamMessages(w, r, sc, status, g)
		default:
			s.writeJSON(w, r, sc, status, g.message())
		}
	}
}

func redact(key string) string {
	if len(key) <= 8 {
		return "***"
	}
	return key[:4] + "…" + key[len(key)-2:]
}
