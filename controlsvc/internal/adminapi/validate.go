package adminapi

import (
	"encoding/json"
	"math"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// Input rules shared by the resources.
const (
	maxNameLen        = 200
	maxConcurrency    = 100_000
	maxModelMappings  = 1000
	maxModelNameLen   = 200
	maxGroupsPerAcct  = 1000
	maxCredentialLen  = 8192
	maxRateMultiplier = 1_000_000 * microsPerUnit // NUMERIC(12,6) holds 6 integer digits
)

var (
	platforms = []string{"openai", "anthropic"}
	statuses  = []string{"active", "disabled"}
)

// checkName trims a name; present names must not be empty, absent ones only fail when
// required.
func checkName(field string, v *string, required bool) error {
	if v == nil {
		if required {
			return invalid("%s is required", field)
		}
		return nil
	}
	*v = strings.TrimSpace(*v)
	if *v == "" {
		return invalid("%s must not be empty", field)
	}
	return checkLength(field, *v)
}

func checkLength(field, v string) error {
	if utf8.RuneCountInString(v) > maxNameLen {
		return invalid("%s must be at most %d characters", field, maxNameLen)
	}
	return nil
}

func checkEnum(field string, v *string, allowed []string) error {
	if v == nil {
		return nil
	}
	for _, a := range allowed {
		if *v == a {
			return nil
		}
	}
	return invalid("%s must be one of %s", field, strings.Join(allowed, ", "))
}

func checkConcurrency(v *int) error {
	if v != nil && (*v < 0 || *v > maxConcurrency) {
		return invalid("concurrency must be between 0 and %d", maxConcurrency)
	}
	return nil
}

func checkPriority(v *int) error {
	if v != nil && (*v < math.MinInt32 || *v > math.MaxInt32) {
		return invalid("priority must fit in a 32-bit integer")
	}
	return nil
}

// parseUSD converts a money field; negative amounts are refused.
func parseUSD(field string, raw json.RawMessage) (int64, error) {
	v, err := parseMicros(raw)
	if err != nil {
		return 0, invalid("%s %v", field, err)
	}
	if v < 0 {
		return 0, invalid("%s must not be negative", field)
	}
	return v, nil
}

func parseRateMultiplier(raw json.RawMessage) (string, error) {
	v, err := parseMicros(raw)
	if err != nil {
		return "", invalid("rate_multiplier %v", err)
	}
	if v < 0 || v >= maxRateMultiplier {
		return "", invalid("rate_multiplier must be at least 0 and below 1000000")
	}
	return string(formatMicros(v)), nil
}

// normalizeBaseURL accepts an absolute http(s) URL without credentials, query or fragment
// (the plugin appends the client path to it) and drops trailing slashes. Slashes and white
// space are trimmed together before the checks, so "https://x/ /" is stored as "https://x",
// not with a path of spaces, and normalising a stored value changes nothing.
func normalizeBaseURL(raw string) (string, error) {
	raw = strings.TrimRightFunc(strings.TrimSpace(raw), func(r rune) bool { return r == '/' || unicode.IsSpace(r) })
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return "", invalid("base_url must be an absolute http or https URL, e.g. https://api.openai.com")
	}
	if u.User != nil {
		// base_url is returned by the API; a credential in it would leak.
		return "", invalid("base_url must not contain credentials; use credential.api_key")
	}
	// An empty fragment ("https://x#") parses as none, yet would swallow the appended path.
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#") {
		return "", invalid("base_url must not have a query or fragment")
	}
	return raw, nil
}

// checkModelMapping enforces {"requested": "upstream"} with an optional trailing * on the
// requested side (prefix match).
func checkModelMapping(m map[string]string) error {
	if len(m) > maxModelMappings {
		return invalid("model_mapping must have at most %d entries", maxModelMappings)
	}
	for from, to := range m {
		switch {
		case strings.TrimSpace(from) == "":
			return invalid("model_mapping keys must not be empty")
		case strings.Contains(strings.TrimSuffix(from, "*"), "*"):
			return invalid("model_mapping key %q: * is only allowed at the end", from)
		case strings.TrimSpace(to) == "":
			return invalid("model_mapping[%q] must not be empty", from)
		case strings.Contains(to, "*"):
			return invalid("model_mapping[%q] must be a model name without *", from)
		case len(from) > maxModelNameLen || len(to) > maxModelNameLen:
			return invalid("model_mapping entries must be at most %d characters", maxModelNameLen)
		}
	}
	return nil
}

func checkGroupIDs(ids []int64) error {
	if len(ids) > maxGroupsPerAcct {
		return invalid("group_ids must have at most %d entries", maxGroupsPerAcct)
	}
	for _, id := range ids {
		if id <= 0 {
			return invalid("group_ids must hold positive integers, got %d", id)
		}
	}
	return nil
}

// credentialInput is the write-only upstream credential.
type credentialInput struct {
	APIKey *string `json:"api_key"`
}

func (c *credentialInput) apiKey() (string, error) {
	if c.APIKey == nil || strings.TrimSpace(*c.APIKey) == "" {
		return "", invalid("credential.api_key is required")
	}
	if len(*c.APIKey) > maxCredentialLen {
		return "", invalid("credential.api_key must be at most %d bytes", maxCredentialLen)
	}
	if strings.ContainsAny(*c.APIKey, "\r\n") {
		// It ends up in an HTTP header.
		return "", invalid("credential.api_key must not contain line breaks")
	}
	return strings.TrimSpace(*c.APIKey), nil
}

// nullable is a field of a request body that may be absent (keep), null (clear) or a value;
// a pointer cannot tell absent from null. Its value is checked by the methods below, so
// errors name the field.
type nullable struct {
	present bool
	raw     json.RawMessage
}

// UnmarshalJSON implements json.Unmarshaler; encoding/json calls it for null too.
func (n *nullable) UnmarshalJSON(b []byte) error {
	n.present = true
	n.raw = append(n.raw[:0], b...)
	return nil
}

func (n *nullable) isNull() bool { return string(n.raw) == "null" }

// usd reads a non-negative USD amount or null.
func (n *nullable) usd(field string) (store.MicrosPatch, error) {
	if !n.present {
		return store.MicrosPatch{}, nil
	}
	if n.isNull() {
		return store.MicrosPatch{Set: true}, nil
	}
	v, err := parseUSD(field, n.raw)
	if err != nil {
		return store.MicrosPatch{}, err
	}
	return store.MicrosPatch{Set: true, Micros: &v}, nil
}

// timestamp reads an RFC 3339 timestamp or null.
func (n *nullable) timestamp(field string) (store.TimePatch, error) {
	if !n.present {
		return store.TimePatch{}, nil
	}
	if n.isNull() {
		return store.TimePatch{Set: true}, nil
	}
	t, err := parseTimestamp(field, n.raw)
	if err != nil {
		return store.TimePatch{}, err
	}
	return store.TimePatch{Set: true, At: &t}, nil
}

// parseTimestamp reads a JSON string holding an RFC 3339 timestamp.
func parseTimestamp(field string, raw json.RawMessage) (time.Time, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return time.Time{}, invalid("%s must be an RFC 3339 timestamp string, e.g. 2026-01-02T15:04:05Z", field)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, invalid("%s must be an RFC 3339 timestamp, e.g. 2026-01-02T15:04:05Z", field)
	}
	return t, nil
}
