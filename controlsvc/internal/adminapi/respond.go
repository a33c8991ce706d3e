package adminapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// Error types of the admin API's {"error":{"type","message"}} body.
const (
	typeInvalidRequest = "invalid_request_error"
	typeAuthentication = "authentication_error"
	typeNotFound       = "not_found_error"
	typeConflict       = "conflict_error"
	typeAPI            = "api_error"
)

// requestError is a problem with the request itself: its body, a query parameter, a path.
type requestError struct {
	status  int
	typ     string
	message string
}

func (e *requestError) Error() string { return e.message }

// invalid reports a bad input; the message names the field.
func invalid(format string, args ...any) error {
	return &requestError{status: http.StatusBadRequest, typ: typeInvalidRequest, message: fmt.Sprintf(format, args...)}
}

var (
	errUnauthorized = &requestError{status: http.StatusUnauthorized, typ: typeAuthentication,
		message: "missing or invalid admin token"}
	errBodyTooLarge = &requestError{status: http.StatusRequestEntityTooLarge, typ: typeInvalidRequest,
		message: fmt.Sprintf("request body too large, limit is %d bytes", maxBodyBytes)}
)

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// writeError is the one place that turns an error into a status and a JSON error body.
// Domain errors carry messages written for clients; anything else is an internal error:
// it is recorded for the request's log line and the client gets a generic 500.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	var (
		re *requestError
		ie *store.InvalidError
		nf *store.NotFoundError
		ce *store.ConflictError
	)
	status, typ, msg := http.StatusInternalServerError, typeAPI, "internal server error"
	switch {
	case errors.As(err, &re):
		status, typ, msg = re.status, re.typ, re.message
	case errors.As(err, &ie):
		status, typ, msg = http.StatusBadRequest, typeInvalidRequest, ie.Error()
	case errors.As(err, &nf):
		status, typ, msg = http.StatusNotFound, typeNotFound, nf.Error()
	case errors.As(err, &ce):
		status, typ, msg = http.StatusConflict, typeConflict, ce.Error()
	default:
		recordInternalError(r, err)
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="poolgate-admin"`)
	}
	writeJSON(w, status, errorBody{Error: errorDetail{Type: typ, Message: msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// An encoding failure here means the client went away; nothing useful is left to do.
	_ = json.NewEncoder(w).Encode(v)
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, r, &requestError{status: http.StatusNotFound, typ: typeNotFound,
		message: fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path)})
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	writeError(w, r, &requestError{status: http.StatusMethodNotAllowed, typ: typeInvalidRequest,
		message: fmt.Sprintf("method %s is not allowed on %s", r.Method, r.URL.Path)})
}
