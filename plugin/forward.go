package plugin

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

var (
	transportsMu sync.Mutex
	// transports holds one upstream transport per configured header timeout and address
	// policy (in practice one): a keep-alive pool shared by every instance and every request.
	transports = make(map[transportKey]*http.Transport)
)

// transportKey is what selects an upstream transport: instances that differ in it must not
// share connections (a pooled connection to a private address would bypass the guard).
type transportKey struct {
	headerTimeout time.Duration
	allowPrivate  bool
}

// sharedTransport returns the upstream transport for headerTimeout and the address policy
// (dialguard.go), creating it once.
func sharedTransport(headerTimeout time.Duration, allowPrivate bool) *http.Transport {
	key := transportKey{headerTimeout: headerTimeout, allowPrivate: allowPrivate}
	transportsMu.Lock()
	defer transportsMu.Unlock()
	if t, ok := transports[key]; ok {
		return t
	}
	t := &http.Transport{
		// Accounts are reached directly; a proxy from the environment would be a surprise.
		Proxy:                 nil,
		DialContext:           guardedDialer(30*time.Second, allowPrivate), // dialguard.go
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: headerTimeout,
		// Ask for identity bodies: SSE must not sit behind a gzip reader, and usage is
		// read from the bytes as they pass.
		DisableCompression: true,
		// An HTTP/1.1 upstream connection keeps a write buffer for its whole life (4 KiB
		// by default), but writes only the request through it, once: headers and a body
		// already in memory. 1 KiB saves ~3 KiB per open connection (docs/design.md,
		// "Memory per open stream"); a bigger body only costs a few more write syscalls,
		// once per request. The read buffer stays at the 4 KiB default: the response
		// headers and every SSE read of the stream go through it, and a smaller one would
		// add syscalls per read. HTTP/2 connections use their own buffers.
		WriteBufferSize: 1 << 10,
	}
	transports[key] = t
	return t
}

// dialer returns a DialContext with a connect timeout. It is a closure rather than the
// method value (&net.Dialer{}).DialContext, which Yaegi v0.16.1 cannot convert to a func
// field of a compiled struct.
func dialer(timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}
}

// upstreamURL joins an account's base URL, the normalised path and the client's query.
func upstreamURL(baseURL, path, rawQuery string) string {
	u := strings.TrimRight(baseURL, "/") + path // trimTrailingSlash, in one compiled call
	if rawQuery != "" {
		u += "?" + rawQuery
	}
	return u
}

// buildUpstreamRequest makes one attempt's request from the untouched client request and
// the body for this grant: the client headers the allowlists let through (headers.go), the
// grant's headers on top.
func buildUpstreamRequest(ctx context.Context, client *http.Request, path string, g *grant, body []byte) (*http.Request, error) {
	out, err := http.NewRequestWithContext(ctx, http.MethodPost, upstreamURL(g.BaseURL, path, client.URL.RawQuery), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	forwardRequestHeaders(out.Header, client.Header, g)
	if vv := out.Header[headerContentType]; len(vv) == 0 || vv[0] == "" {
		out.Header[headerContentType] = jsonContentType
	}
	applyGrantHeaders(out.Header, g)
	return out, nil
}

const headerContentType = "Content-Type"

// jsonContentType is shared by the upstream requests that get it (the transport only
// reads it), as copyListed shares the client's values.
var jsonContentType = []string{"application/json"}

// bodyFor returns the body to send under g: the client's own bytes unless the account maps
// the model, usage reporting must be switched on or the grant sets the output limit
// (g.MaxOutputTokens: the limit the reservation covers). The last rewrite is cached, since
// failover attempts usually land on accounts with the same mapping.
func bodyFor(x *exchange, g *grant) []byte {
	model := ""
	if g.UpstreamModel != "" && g.UpstreamModel != x.info.model {
		model = g.UpstreamModel
	}
	limit := g.MaxOutputTokens
	if limit < 0 {
		limit = 0
	}
	if model == "" && !x.info.forceIncludeUsage && limit == 0 {
		return x.body
	}
	key := sentKey(model, limit)
	if x.sent != nil && x.sentFor == key {
		return x.sent
	}
	b, err := rewriteBody(x.body, model, x.info.forceIncludeUsage, outputLimitField(x.path), limit)
	if err != nil {
		return x.body // cannot happen for a validated object; send it unchanged
	}
	x.sent, x.sentFor = b, key
	return b
}

// sentKey keys the cached upstream body (exchange.sent) by what shapes it beyond the
// client's bytes: the model and the output limit (0: none).
func sentKey(model string, limit int64) string {
	if limit <= 0 {
		return model
	}
	return model + "\x00" + strconv.FormatInt(limit, 10)
}

// outputLimitField is the body field that limits the output on path.
func outputLimitField(path string) string {
	switch path {
	case pathResponses:
		return "max_output_tokens"
	case pathChat:
		return "max_completion_tokens"
	case pathMessages:
		return "max_tokens"
	}
	return ""
}
