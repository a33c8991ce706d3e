package plugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// Internal API of controlsvc (docs/design.md).
const (
	admitPath   = "/internal/v1/admit"
	reportsPath = "/internal/v1/reports"
	renewPath   = "/internal/v1/renew"

	headerSecret    = "X-Poolgate-Secret"
	headerReject    = "X-Poolgate-Reject"
	headerRequestID = "X-Poolgate-Request-Id"

	// rejectNoAccount on a re-admission means the account pool is exhausted.
	rejectNoAccount = "no_account"

	// maxControlReply bounds what is read from one controlsvc answer.
	maxControlReply = 1 << 20
)

// errControlUnavailable covers every controlsvc answer that is neither a grant nor a
// refusal: unreachable, too slow, a non-200 without X-Poolgate-Reject, a garbled body.
var errControlUnavailable = errors.New("control service unavailable")

// sharedControl bundles the package-level objects that talk to one controlsvc. Package state
// is shared by every instance of the plugin (Traefik builds one interpreter per plugin), and
// New runs per router and on every reload, so these are created once per controlURL+secret.
type sharedControl struct {
	client  *controlClient
	reports *reporter
	leases  *renewer
}

var (
	controlsMu sync.Mutex
	controls   = make(map[string]*sharedControl)
)

// controlFor returns the shared control objects for baseURL and secret, creating them on
// first use. Their goroutines start lazily, on the first report or lease.
func controlFor(baseURL, secret string) *sharedControl {
	key := baseURL + "\x00" + secret
	controlsMu.Lock()
	defer controlsMu.Unlock()
	if c, ok := controls[key]; ok {
		return c
	}
	client := newControlClient(baseURL, secret)
	c := &sharedControl{
		client:  client,
		reports: newReporter(client, reportMaxBatch, reportMaxSpool),
		leases:  newRenewer(client, renewInterval),
	}
	controls[key] = c
	return c
}

// closeControl stops the background work for baseURL and secret after a final report flush
// and forgets it. Traefik has no hook for this; tests use it.
func closeControl(baseURL, secret string) {
	key := baseURL + "\x00" + secret
	controlsMu.Lock()
	c, ok := controls[key]
	delete(controls, key)
	controlsMu.Unlock()
	if ok {
		c.reports.close()
		c.leases.close()
	}
}

// controlClient makes the plugin's calls to controlsvc over its own keep-alive pool.
type controlClient struct {
	baseURL   string
	secret    string
	transport *http.Transport
}

func newControlClient(baseURL, secret string) *controlClient {
	return &controlClient{
		baseURL: baseURL,
		secret:  secret,
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
// ctx bounds the whole exchange, reading the reply included.
func (c *controlClient) post(ctx context.Context, path string, body []byte) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.baseURL+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("building %s request: %w", path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(headerSecret, c.secret)
	resp, err := c.transport.RoundTrip(req)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("calling %s: %w", path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxControlReply))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("reading %s reply: %w", path, err)
	}
	return resp.StatusCode, resp.Header, data, nil
}

// admitBound bounds one admit call: controlsvc's own work (admissionTimeout) plus the
// longest it may keep the request in its wait queues, which the call's max_wait_ms caps.
func (p *Poolgate) admitBound() time.Duration {
	return p.admitTimeout + p.maxWait
}

// rejection is a controlsvc refusal, to be copied to the client as it is.
type rejection struct {
	status      int
	reason      string
	body        []byte
	contentType string
	retryAfter  string
}

// admit asks for an account. Exactly one of the grant, the rejection and the error is set;
// the error is errControlUnavailable (wrapped) for anything but a grant or a refusal.
func (c *controlClient) admit(ctx context.Context, timeout time.Duration, ar *admitRequest) (*grant, *rejection, error) {
	body, err := encodeJSON(ar)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding admit request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	status, header, data, err := c.post(ctx, admitPath, body)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errControlUnavailable, err)
	}
	if status == http.StatusOK {
		g, ok := decodeGrant(data)
		if !ok {
			return nil, nil, fmt.Errorf("%w: malformed grant", errControlUnavailable)
		}
		return g, nil, nil
	}
	reason := header.Get(headerReject)
	if reason == "" {
		return nil, nil, fmt.Errorf("%w: admit answered %d without %s", errControlUnavailable, status, headerReject)
	}
	ct := header.Get("Content-Type")
	if ct == "" {
		ct = "application/json"
	}
	return nil, &rejection{
		status:      status,
		reason:      reason,
		body:        data,
		contentType: ct,
		retryAfter:  header.Get("Retry-After"),
	}, nil
}
