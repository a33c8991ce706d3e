package restart

import (
	"io"
	"net/http"
	"strings"

	"github.com/poolgate/poolgate/internal/gatewaytest"
)

type obj = gatewaytest.Obj

// client is the shared end-to-end client (admin API, fake upstream, ledger and slot checks)
// plus this test's one request shape.
type client struct {
	*gatewaytest.Client
}

const requestBody = `{"model":"gpt-4o-mini","input":"hello"}`

// request sends one /v1/responses request and returns its status, request id and, unless
// it is a 200, its body.
func (c *client) request(key string) (int, string, string) {
	req, err := http.NewRequest(http.MethodPost, c.S.GatewayURL+"/v1/responses", strings.NewReader(requestBody))
	if err != nil {
		return 0, "", err.Error()
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, "", err.Error()
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, resp.Header.Get("X-Poolgate-Request-Id"), "reading the body: " + err.Error()
	}
	if resp.StatusCode == http.StatusOK {
		body = nil
	}
	return resp.StatusCode, resp.Header.Get("X-Poolgate-Request-Id"), string(body)
}
