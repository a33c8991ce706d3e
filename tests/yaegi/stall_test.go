package yaegi

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/poolgate/poolgate/fakeupstream"
)

// A first admission whose first control service address is dead goes to the next one, and
// the report follows it: controlURLs under Yaegi against the real controlsvc.
func TestControlURLsFailoverUnderYaegi(t *testing.T) {
	s := getStack(t)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	h, err := plugin(t).newHandler(t.Context(), nextHandler(),
		s.pluginSettings(map[string]any{"controlURLs": deadURL + ", " + s.controlURL}), "poolgate-urls")
	if err != nil {
		t.Fatal(err)
	}
	tn := s.seed(t, accountSpec{name: "a", priority: 1})
	for i := 0; i < 2; i++ {
		rec := serve(t, h, "/v1/responses", bearer(tn.key), `{"model":"gpt-4o","input":"hi"}`)
		if rec.Code != 200 {
			t.Fatalf("request %d: %d %s", i, rec.Code, rec.Body)
		}
	}
	rows := s.waitUsage(t, tn.keyID, 2)
	for _, r := range rows {
		if r.Status != 200 {
			t.Errorf("usage row %+v", r)
		}
	}
	s.waitIdle(t, tn)
}

// A client that never reads a large stream: the stall watchdog under Yaegi fails the
// blocked write (a plain net/http writer supports the write deadline), the request ends as
// client_gone and its slots are released while the client is still connected.
func TestStalledClientUnderYaegi(t *testing.T) {
	s := getStack(t)
	word := strings.Repeat("x", 4000) + " "
	tn := s.seed(t, accountSpec{name: "big", priority: 1,
		script: &fakeupstream.Script{Text: strings.Repeat(word, 3000)}})
	h, err := plugin(t).newHandler(t.Context(), nextHandler(),
		s.pluginSettings(map[string]any{"writeStallTimeout": "500ms"}), "poolgate-stall")
	if err != nil {
		t.Fatal(err)
	}
	gw := httptest.NewServer(h)
	defer gw.Close()
	raddr, err := net.ResolveTCPAddr("tcp", strings.TrimPrefix(gw.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTCP("tcp", nil, raddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadBuffer(1024)
	body := `{"model":"gpt-4o","input":"hi","stream":true}`
	fmt.Fprintf(conn, "POST /v1/responses HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", tn.key, len(body), body)

	rows := s.waitUsage(t, tn.keyID, 1)
	if r := rows[0]; r.Status != 499 || r.ErrorClass != "client_gone" {
		t.Errorf("usage row %+v, want 499 client_gone", r)
	}
	s.waitIdle(t, tn)
}
