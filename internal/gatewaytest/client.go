// Package gatewaytest is the client side of the end-to-end tests that run their own stack
// (e2e/restart, e2e/fault): the admin API and the AI API through Traefik, the fake
// upstream's control API, and the ledger and slot checks those tests share.
package gatewaytest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/poolgate/poolgate/internal/stack"
)

// Obj is a JSON object as the admin API answers it; numbers stay json.Number, so money
// keeps its exact decimal text.
type Obj = map[string]any

// Client talks to a stack as clients and operators do.
type Client struct {
	T    testing.TB
	S    *stack.Stack
	HTTP *http.Client
}

// Admin calls the admin API through Traefik's admin entrypoint.
func (c *Client) Admin(method, path string, body any) (int, Obj) {
	c.T.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.T.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.S.AdminURL+"/api/v1/admin"+path, rd)
	if err != nil {
		c.T.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.S.AdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		c.T.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := Obj{}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if len(raw) > 0 {
		if err := dec.Decode(&out); err != nil {
			c.T.Fatalf("%s %s: status %d, body not JSON: %s", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, out
}

// MustAdmin is Admin failing the test on any status but 2xx.
func (c *Client) MustAdmin(method, path string, body any) Obj {
	c.T.Helper()
	code, out := c.Admin(method, path, body)
	if code < 200 || code > 299 {
		c.T.Fatalf("%s %s: status %d: %v", method, path, code, out)
	}
	return out
}

// ProgramUpstream sets the fake upstream's script for a credential.
func (c *Client) ProgramUpstream(credential string, script Obj) {
	c.T.Helper()
	b, _ := json.Marshal(script)
	req, _ := http.NewRequest(http.MethodPut, c.S.FakeURL+"/_fake/credentials/"+credential, bytes.NewReader(b))
	resp, err := c.HTTP.Do(req)
	if err != nil {
		c.T.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		c.T.Fatalf("programming the fake upstream: %s", resp.Status)
	}
}

// Metrics reads a Prometheus text exposition into series → value.
func (c *Client) Metrics(u string) map[string]int64 {
	c.T.Helper()
	resp, err := c.HTTP.Get(u)
	if err != nil {
		c.T.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		c.T.Fatalf("GET %s: %s, Content-Type %q", u, resp.Status, resp.Header.Get("Content-Type"))
	}
	out := make(map[string]int64)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseInt(line[i+1:], 10, 64)
		if i < 0 || err != nil {
			c.T.Fatalf("GET %s: not a counter line: %q", u, line)
		}
		out[line[:i]] = v
	}
	return out
}

// ID is an admin object's "id".
func ID(o Obj) int64 {
	n, _ := o["id"].(json.Number)
	v, _ := n.Int64()
	return v
}

// Integer reads a JSON integer.
func Integer(t testing.TB, v any) int64 {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("%v (%T) is not a number", v, v)
	}
	i, err := n.Int64()
	if err != nil {
		t.Fatalf("%v is not an integer", v)
	}
	return i
}

// Micros reads a USD amount exactly: at most six decimals, as the API writes money.
func Micros(t testing.TB, v any) int64 {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("amount %v (%T) is not a number", v, v)
	}
	s := n.String()
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	whole, frac, _ := strings.Cut(s, ".")
	if len(frac) > 6 || strings.ContainsAny(s, "eE") {
		t.Fatalf("amount %s is not an exact micro-dollar decimal", n)
	}
	frac += strings.Repeat("0", 6-len(frac))
	w, err1 := strconv.ParseInt(whole, 10, 64)
	f, err2 := strconv.ParseInt(frac, 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("amount %s is not a decimal", n)
	}
	m := w*1_000_000 + f
	if neg {
		m = -m
	}
	return m
}

// Head sorts s and keeps its first five, for error messages.
func Head(s []string) []string {
	sort.Strings(s)
	if len(s) > 5 {
		return s[:5]
	}
	return s
}
