package adminapi

import (
	"net/http"
	"strings"
)

// An account's fixed headers (docs/design.md, "Forwarded headers") are sent on
// every upstream request to it, after the client headers the gateway forwards and next to
// its credential: e.g. an OpenAI-Organization the account belongs to. They are never the
// credential (that is the credential field), never framing, hop-by-hop or forwarding
// headers, and never what the gateway sets itself.

// Bounds of an account's fixed headers.
const (
	maxAccountHeaders      = 32
	maxHeaderNameLen       = 64
	maxHeaderValueLen      = 1024
	maxAccountHeadersBytes = 8192
)

// refusedAccountHeaders are the names an account's fixed headers may not use (canonical),
// with why.
var refusedAccountHeaders = map[string]string{
	"Authorization":       "the credential goes in the credential field",
	"X-Api-Key":           "the credential goes in the credential field",
	"X-Goog-Api-Key":      "the credential goes in the credential field",
	"Proxy-Authorization": "it is a hop-by-hop header",
	"Cookie":              "accounts authenticate with API keys",
	"Anthropic-Version":   "the gateway sets it",
	"User-Agent":          "the group decides it (user_agent)",
	"Host":                "it is set from base_url",
	"Content-Length":      "it is set from the body",
	"Content-Type":        "it is the client request's",
	"Content-Encoding":    "the body is sent as it is",
	"Accept-Encoding":     "the gateway reads usage from identity bodies",
	"Expect":              "the body is sent at once",
	"Connection":          "it is a hop-by-hop header",
	"Proxy-Connection":    "it is a hop-by-hop header",
	"Keep-Alive":          "it is a hop-by-hop header",
	"Te":                  "it is a hop-by-hop header",
	"Trailer":             "it is a hop-by-hop header",
	"Transfer-Encoding":   "it is a hop-by-hop header",
	"Upgrade":             "it is a hop-by-hop header",
	"Forwarded":           "it would name a client to the provider",
	"Via":                 "it would name a proxy to the provider",
	"X-Real-Ip":           "it would name a client to the provider",
}

// accountHeadersView shows an account's fixed headers ({} = none).
type accountHeadersView struct {
	Headers map[string]string `json:"headers"`
}

func newAccountHeadersView(h map[string]string) accountHeadersView {
	if h == nil {
		h = map[string]string{}
	}
	return accountHeadersView{Headers: h}
}

// accountHeadersInput is the headers field of POST and PATCH /accounts: it replaces all the
// account's fixed headers ({} clears them).
type accountHeadersInput struct {
	Headers *map[string]string `json:"headers"`
}

// headers validates the field; nil when absent. Names are stored canonical.
func (in *accountHeadersInput) headers() (*map[string]string, error) {
	if in.Headers == nil {
		return nil, nil
	}
	out, err := checkAccountHeaders(*in.Headers)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// checkAccountHeaders validates fixed headers and returns them under canonical names.
func checkAccountHeaders(h map[string]string) (map[string]string, error) {
	if len(h) > maxAccountHeaders {
		return nil, invalid("headers may hold at most %d headers", maxAccountHeaders)
	}
	out := make(map[string]string, len(h))
	size := 0
	for name, value := range h {
		if name == "" || len(name) > maxHeaderNameLen || !headerToken(name) {
			return nil, invalid("headers: %q is not a header name (1 to %d letters, digits and !#$%%&'*+-.^_`|~)",
				name, maxHeaderNameLen)
		}
		c := http.CanonicalHeaderKey(name)
		if why, refused := refusedAccountHeaders[c]; refused {
			return nil, invalid("headers: %s cannot be a fixed header: %s", name, why)
		}
		if strings.HasPrefix(c, "X-Forwarded-") || strings.HasPrefix(c, "X-Poolgate-") {
			return nil, invalid("headers: %s cannot be a fixed header: the gateway never sends it upstream", name)
		}
		if _, dup := out[c]; dup {
			return nil, invalid("headers: %s is named twice", c)
		}
		if value == "" || len(value) > maxHeaderValueLen || value != strings.TrimSpace(value) || !printableASCII(value) {
			return nil, invalid("headers[%q] must be 1 to %d bytes of printable ASCII, without leading or trailing spaces",
				name, maxHeaderValueLen)
		}
		size += len(c) + len(value)
		out[c] = value
	}
	if size > maxAccountHeadersBytes {
		return nil, invalid("headers may hold at most %d bytes of names and values", maxAccountHeadersBytes)
	}
	return out, nil
}

// headerToken reports whether s is an RFC 9110 token (a valid header name).
func headerToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
