package adminapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
)

// maxBodyBytes bounds admin request bodies; real ones are a few hundred bytes.
const maxBodyBytes = 1 << 20

// decodeBody reads one JSON object from the request into dst. Unknown fields are refused,
// so a typo like "concurency" is an error instead of a silent no-op. Every error names
// what is wrong in words meant for the API client.
func decodeBody(w http.ResponseWriter, r *http.Request, dst any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return errBodyTooLarge
		}
		return invalid("request body must hold a single JSON object")
	}
	return nil
}

func decodeError(err error) error {
	var (
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
		tooLarge  *http.MaxBytesError
	)
	switch {
	case errors.Is(err, io.EOF):
		return invalid("request body is empty; send a JSON object")
	case errors.As(err, &tooLarge):
		return errBodyTooLarge
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("request body is not valid JSON")
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return invalid("request body must be a JSON object")
		}
		return invalid("%s must be %s", typeErr.Field, describeType(typeErr.Type))
	}
	if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return invalid("unknown field %s", field)
	}
	return invalid("request body is not valid JSON")
}

// describeType names a Go type the way an API client thinks of JSON values.
func describeType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Pointer:
		return describeType(t.Elem())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Slice, reflect.Array:
		return "an array of " + plural(t.Elem())
	case reflect.Map:
		return "an object with " + plural(t.Elem()) + " as values"
	default:
		return "an object"
	}
}

func plural(t reflect.Type) string {
	d := describeType(t)
	d = strings.TrimPrefix(strings.TrimPrefix(d, "an "), "a ")
	return d + "s"
}

// pathID is the {id} of the route; the route pattern guarantees digits, but not the range.
func pathID(r *http.Request) (int64, error) {
	raw := mux.Vars(r)["id"]
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		return 0, &requestError{status: http.StatusNotFound, typ: typeNotFound, message: fmt.Sprintf("no object with id %q", raw)}
	}
	return id, nil
}

// queryID reads an optional positive integer query parameter; absent is 0.
func queryID(q url.Values, name string) (int64, error) {
	raw := q.Get(name)
	if raw == "" {
		return 0, nil
	}
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		return 0, invalid("query parameter %s must be a positive integer", name)
	}
	return id, nil
}

// queryTime reads an optional RFC 3339 timestamp query parameter.
func queryTime(q url.Values, name string) (time.Time, error) {
	// An unencoded "+" of a UTC offset arrives as a space.
	raw := strings.ReplaceAll(q.Get(name), " ", "+")
	if raw == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil {
		return time.Time{}, invalid("query parameter %s must be an RFC 3339 timestamp, e.g. 2026-01-02T15:04:05Z", name)
	}
	return t, nil
}
