package restart

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/poolgate/poolgate/internal/stack"
)

type obj = map[string]any

// client talks to the stack as clients and operators do: the AI API and the admin API
// through Traefik, the fake upstream's control API directly.
type client struct {
	t    *testing.T
	s    *stack.Stack
	http *http.Client
}

const requestBody = `{"model":"gpt-4o-mini","input":"hello"}`

// request sends one /v1/responses request and returns its status, request id and, unless
// it is a 200, its body.
func (c *client) request(key string) (int, string, string) {
	req, err := http.NewRequest(http.MethodPost, c.s.GatewayURL+"/v1/responses", strings.NewReader(requestBody))
	if err != nil {
		return 0, "", err.Error()
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
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

// admin calls the admin API through Traefik; numbers in the answer stay json.Number, so
// money keeps its exact decimal text.
func (c *client) admin(method, path string, body any) (int, obj) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.s.GatewayURL+"/api/v1/admin"+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.s.AdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := obj{}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if len(raw) > 0 {
		if err := dec.Decode(&out); err != nil {
			c.t.Fatalf("%s %s: status %d, body not JSON: %s", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, out
}

func (c *client) mustAdmin(method, path string, body any) obj {
	c.t.Helper()
	code, out := c.admin(method, path, body)
	if code < 200 || code > 299 {
		c.t.Fatalf("%s %s: status %d: %v", method, path, code, out)
	}
	return out
}

func (c *client) programUpstream(credential string, script obj) {
	c.t.Helper()
	b, _ := json.Marshal(script)
	req, _ := http.NewRequest(http.MethodPut, c.s.FakeURL+"/_fake/credentials/"+credential, bytes.NewReader(b))
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		c.t.Fatalf("programming the fake upstream: %s", resp.Status)
	}
}

// usageCount is the number of usage records of the key, from the usage summary.
func (c *client) usageCount(keyID int64) int {
	c.t.Helper()
	out := c.mustAdmin("GET", fmt.Sprintf("/usage/summary?group_by=api_key&api_key_id=%d", keyID), nil)
	total, _ := out["total"].(obj)
	return int(integer(c.t, total["requests"]))
}

// listUsage pages through every usage record of the key.
func (c *client) listUsage(keyID int64) []record {
	c.t.Helper()
	var recs []record
	cursor := ""
	for page := 0; page < 100; page++ {
		path := fmt.Sprintf("/usage?api_key_id=%d&limit=500", keyID)
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		out := c.mustAdmin("GET", path, nil)
		items, _ := out["items"].([]any)
		for _, it := range items {
			o, _ := it.(obj)
			rid, _ := o["request_id"].(string)
			recs = append(recs, record{requestID: rid, status: integer(c.t, o["status"]), costMicros: micros(c.t, o["cost_usd"])})
		}
		next, _ := out["next_cursor"].(string)
		if next == "" {
			return recs
		}
		cursor = next
	}
	c.t.Fatal("more than 100 pages of usage records")
	return nil
}

// busySlots describes the slots the user and the account still hold or wait for; "" when
// none.
func (c *client) busySlots(userID, accountID int64) string {
	c.t.Helper()
	out := c.mustAdmin("GET", "/concurrency", nil)
	var busy []string
	found := 0
	for _, l := range []struct {
		list, field string
		id          int64
	}{{"users", "user_id", userID}, {"accounts", "account_id", accountID}} {
		items, _ := out[l.list].([]any)
		for _, it := range items {
			o, _ := it.(obj)
			if integer(c.t, o[l.field]) != l.id {
				continue
			}
			found++
			if integer(c.t, o["active"]) != 0 || integer(c.t, o["waiting"]) != 0 {
				busy = append(busy, fmt.Sprintf("%s %d: %v", l.list, l.id, o))
			}
		}
	}
	if found != 2 {
		busy = append(busy, fmt.Sprintf("user or account missing from /concurrency: %v", out))
	}
	return strings.Join(busy, "; ")
}

// metrics reads a Prometheus text exposition into series → value.
func (c *client) metrics(u string) map[string]int64 {
	c.t.Helper()
	resp, err := c.http.Get(u)
	if err != nil {
		c.t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		c.t.Fatalf("GET %s: %s, Content-Type %q", u, resp.Status, resp.Header.Get("Content-Type"))
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
			c.t.Fatalf("GET %s: not a counter line: %q", u, line)
		}
		out[line[:i]] = v
	}
	return out
}

func id(o obj) int64 {
	n, _ := o["id"].(json.Number)
	v, _ := n.Int64()
	return v
}

func integer(t *testing.T, v any) int64 {
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

// micros reads a USD amount exactly: at most six decimals, as the API writes money.
func micros(t *testing.T, v any) int64 {
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
