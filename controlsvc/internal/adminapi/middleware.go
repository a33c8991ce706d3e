package adminapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/gorilla/mux"
)

// RequestIDHeader carries the request id in and out; it ties the client's view to the log.
const RequestIDHeader = "X-Request-Id"

// validRequestID limits client-supplied ids to something safe to log.
var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

type ctxKey struct{}

// requestState is shared between the logging middleware and writeError, so each request
// ends in exactly one log line that includes its internal error, if any.
type requestState struct {
	id  string
	err error
}

func recordInternalError(r *http.Request, err error) {
	if st, ok := r.Context().Value(ctxKey{}).(*requestState); ok {
		st.err = err
		return
	}
	slog.Error("admin api internal error", "error", err)
}

// statusRecorder remembers the status written through it.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// logRequests writes one line per admin request: id, method, route, status, duration and,
// for 500s, the internal error. Bodies and headers are never logged.
func (a *API) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get(RequestIDHeader)
		if !validRequestID.MatchString(id) {
			id = newRequestID()
		}
		w.Header().Set(RequestIDHeader, id)
		st := &requestState{id: id}
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), ctxKey{}, st)))

		route := r.URL.Path
		if cr := mux.CurrentRoute(r); cr != nil {
			if tpl, err := cr.GetPathTemplate(); err == nil {
				route = tpl
			}
		}
		attrs := []any{
			"request_id", id, "method", r.Method, "route", route, "path", r.URL.Path,
			"status", rec.status, "duration_ms", time.Since(start).Milliseconds(),
		}
		level := slog.LevelInfo
		if st.err != nil {
			level = slog.LevelError
			attrs = append(attrs, "error", st.err.Error())
		}
		a.log.Log(r.Context(), level, "admin request", attrs...)
	})
}

func newRequestID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read does not fail on supported platforms
	return "adm_" + hex.EncodeToString(b)
}

// requireAdmin checks "Authorization: Bearer <admin token>". Both sides are hashed first so
// the comparison takes the same time whatever the token's length.
func (a *API) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearerToken(r.Header.Get("Authorization"))
		got := sha256.Sum256([]byte(token))
		if !ok || subtle.ConstantTimeCompare(got[:], a.tokenHash[:]) != 1 {
			writeError(w, r, errUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// maxBearer bounds the Authorization header the admin API hashes: the token is at most 256
// bytes (config.MaxSecretBytes), so a longer header is refused without work.
const maxBearer = 7 + 256

func bearerToken(header string) (string, bool) {
	if len(header) > maxBearer {
		return "", false
	}
	scheme, token, found := strings.Cut(header, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
