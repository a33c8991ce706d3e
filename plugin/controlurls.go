package plugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Several controlsvc instances (docs/design.md, "Several control service addresses").
// controlsvc keeps its state in Redis and PostgreSQL, so any instance can serve any call:
// the plugin sends a call to the address that answered last and moves on to the next one
// when the call could not connect or the instance says it is shutting down. One dead
// instance then costs one failed connect, not one per call.

// rejectShuttingDown is controlsvc's reason while it drains on SIGTERM: the call was not
// worked on, another instance may take it.
const rejectShuttingDown = "shutting_down"

var errNoControlURL = errors.New("controlURLs names no URL")

// parseControlURLs reads the controlURLs list (comma-separated; spaces around entries are
// ignored) or, when it is blank, the single controlURL. The result has no trailing
// slashes and no duplicates.
func parseControlURLs(list, single string) ([]string, error) {
	raw := []string{single}
	if strings.TrimSpace(list) != "" {
		raw = strings.Split(list, ",")
	}
	out := make([]string, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		entry := strings.TrimSpace(raw[i])
		u, err := parseControlURL(entry)
		if err != nil {
			return nil, fmt.Errorf("entry %d %q: %w", i+1, entry, err)
		}
		dup := false
		for j := 0; j < len(out); j++ {
			if out[j] == u {
				dup = true
			}
		}
		if !dup {
			out = append(out, u)
		}
	}
	if len(out) == 0 {
		return nil, errNoControlURL
	}
	return out, nil
}

// controlClient makes the plugin's calls to controlsvc over its own keep-alive pool.
type controlClient struct {
	urls      []string
	secret    *secretSource
	transport *http.Transport

	mu        sync.Mutex
	preferred int // index into urls of the instance that answered last
}

// newControlClient takes the comma-joined list made by parseControlURLs (one URL is a
// list of one) and a secret spec (secretSpec).
func newControlClient(list, secret string) *controlClient {
	return &controlClient{
		urls:   strings.Split(list, ","),
		secret: newSecretSource(secret),
		transport: &http.Transport{
			Proxy:               nil, // controlsvc is local: never route it through a proxy from the environment
			DialContext:         dialer(5 * time.Second),
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}

// post sends body to path and returns the status, headers and (bounded) body of the reply.
// ctx bounds the whole exchange, every address tried and reading the reply included.
//
// It starts at the address that answered last and tries each address at most once: it
// moves on when the call got no answer while ctx was still alive (refused, reset, no
// route: the instance did not take the call, or died with it, and every internal call is
// safe to repeat elsewhere — see docs/design.md) or when the answer was a 503 with
// X-Poolgate-Reject: shutting_down. With no address left it returns the last
// shutting_down answer if there was one, else the last error. A slow answer is never
// retried elsewhere: the instance may be working on it.
func post(c *controlClient, ctx context.Context, path string, body []byte) (int, http.Header, []byte, error) {
	c.mu.Lock()
	first := c.preferred
	c.mu.Unlock()
	var (
		lastErr   error
		shutdown  bool
		shStatus  int
		shHeader  http.Header
		shData    []byte
		addresses = len(c.urls)
	)
	for k := 0; k < addresses; k++ {
		i := (first + k) % addresses
		status, header, data, answered, err := postTo(c, ctx, c.urls[i], path, body)
		if err == nil && !isShuttingDown(status, header) {
			c.mu.Lock()
			c.preferred = i
			c.mu.Unlock()
			return status, header, data, nil
		}
		if err == nil {
			shutdown, shStatus, shHeader, shData = true, status, header, data
		} else {
			lastErr = err
			if answered || ctx.Err() != nil {
				break // the reply broke off, or the call's time is up
			}
		}
	}
	if shutdown {
		return shStatus, shHeader, shData, nil
	}
	return 0, nil, nil, lastErr
}

// postTo makes the call to one address. answered is true once response headers arrived.
func postTo(c *controlClient, ctx context.Context, baseURL, path string, body []byte) (int, http.Header, []byte, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, false, fmt.Errorf("building %s request: %w", path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	secret, err := get(c.secret)
	if err != nil {
		return 0, nil, nil, false, err
	}
	req.Header.Set(headerSecret, secret)
	resp, err := c.transport.RoundTrip(req)
	if err != nil {
		return 0, nil, nil, false, fmt.Errorf("calling %s at %s: %w", path, baseURL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxControlReply))
	if err != nil {
		return 0, nil, nil, true, fmt.Errorf("reading %s reply from %s: %w", path, baseURL, err)
	}
	return resp.StatusCode, resp.Header, data, true, nil
}

func isShuttingDown(status int, h http.Header) bool {
	return status == http.StatusServiceUnavailable && h.Get(headerReject) == rejectShuttingDown
}

// controlKey names the shared control objects of an address list and secret.
func controlKey(list, secret string) string {
	return list + "\x00" + secret
}

// deadlineMs is t as absolute Unix milliseconds, the unit of the admit call's deadline_ms.
func deadlineMs(t time.Time) int64 {
	return t.UnixNano() / int64(time.Millisecond)
}
