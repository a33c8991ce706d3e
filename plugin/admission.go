package plugin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/poolgate/poolgate/plugin/jsonsse"
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

// sharedControl bundles the package-level objects that talk to one controlsvc deployment.
// Package state is shared by every instance of the plugin (Traefik builds one interpreter per
// plugin), and New runs per router and on every reload, so these are created once per
// address list + secret.
type sharedControl struct {
	client  *controlClient
	reports *reporter
	leases  *renewer
}

var (
	controlsMu sync.Mutex
	controls   = make(map[string]*sharedControl)
)

// controlFor returns the shared control objects for the address list (comma-joined, from
// parseControlURLs) and secret, creating them on first use. Their goroutines start lazily,
// on the first report or lease.
func controlFor(list, secret string) *sharedControl {
	key := controlKey(list, secret)
	controlsMu.Lock()
	defer controlsMu.Unlock()
	if c, ok := controls[key]; ok {
		return c
	}
	client := newControlClient(list, secret)
	c := &sharedControl{
		client:  client,
		reports: newReporter(client, reportMaxBatch, reportMaxSpool),
		leases:  newRenewer(client, renewInterval),
	}
	controls[key] = c
	return c
}

// closeControl stops the background work for the address list and secret after a final
// report flush and forgets it. Traefik has no hook for this; tests use it.
func closeControl(list, secret string) {
	key := controlKey(list, secret)
	controlsMu.Lock()
	c, ok := controls[key]
	delete(controls, key)
	controlsMu.Unlock()
	if ok {
		c.reports.close()
		c.leases.close()
	}
}

// admitBound bounds one admit call: controlsvc's own work (admissionTimeout) plus the
// longest it may keep the request in its wait queues, which the call's max_wait_ms caps.
func admitBound(p *Poolgate) time.Duration {
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
// The call, every controlsvc address it tries included, ends at now + timeout, and the
// request tells controlsvc so in deadline_ms.
func (c *controlClient) admit(ctx context.Context, timeout time.Duration, ar *admitRequest) (*grant, *rejection, error) {
	deadline := time.Now().Add(timeout)
	ar.DeadlineMs = deadlineMs(deadline)
	body, err := jsonsse.Encode(ar)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding admit request: %w", err)
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	status, header, data, err := post(c, ctx, admitPath, body)
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
