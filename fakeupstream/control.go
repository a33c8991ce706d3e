package fakeupstream

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Control API paths.
const (
	controlCredentials = "/_fake/credentials/"
	controlRequests    = "/_fake/requests"
	controlReset       = "/_fake/reset"
)

// maxScriptBytes bounds a script sent to the control API.
const maxScriptBytes = 16 << 20

// serveControl answers the /_fake/ control API:
//
//	PUT    /_fake/credentials/{api_key}  body: Script → 204
//	DELETE /_fake/credentials/{api_key}  → 204
//	GET    /_fake/requests               → {"items":[RecordedRequest…]} oldest first
//	DELETE /_fake/requests               → 204
//	POST   /_fake/reset                  → 204 (scripts and log forgotten)
func (s *Server) serveControl(w http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	switch {
	case strings.HasPrefix(path, controlCredentials):
		key, err := url.PathUnescape(strings.TrimPrefix(path, controlCredentials))
		if err != nil || key == "" {
			controlError(w, http.StatusBadRequest, "the path must be /_fake/credentials/{api_key}")
			return
		}
		s.serveCredential(w, r, key)
	case path == controlRequests:
		switch r.Method {
		case http.MethodGet:
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(struct {
				Items []RecordedRequest `json:"items"`
			}{s.Requests()})
		case http.MethodDelete:
			s.ClearRequests()
			w.WriteHeader(http.StatusNoContent)
		default:
			controlError(w, http.StatusMethodNotAllowed, "use GET or DELETE")
		}
	case path == controlReset && r.Method == http.MethodPost:
		s.Reset()
		w.WriteHeader(http.StatusNoContent)
	default:
		controlError(w, http.StatusNotFound, "unknown control endpoint "+r.Method+" "+path)
	}
}

func (s *Server) serveCredential(w http.ResponseWriter, r *http.Request, key string) {
	switch r.Method {
	case http.MethodPut:
		body, err := io.ReadAll(io.LimitReader(r.Body, maxScriptBytes))
		if err != nil {
			controlError(w, http.StatusBadRequest, "reading script: "+err.Error())
			return
		}
		sc, err := ParseScript(body)
		if err != nil {
			controlError(w, http.StatusBadRequest, err.Error())
			return
		}
		s.SetCredentialScript(key, sc)
		w.WriteHeader(http.StatusNoContent)
	case http.MethodDelete:
		s.ClearCredentialScript(key)
		w.WriteHeader(http.StatusNoContent)
	default:
		controlError(w, http.StatusMethodNotAllowed, "use PUT or DELETE")
	}
}

func controlError(w http.ResponseWriter, status int, message string) {
	writeError(w, apiOpenAI, status, message)
}
