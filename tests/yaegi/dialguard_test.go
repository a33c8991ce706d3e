package yaegi

import (
	"context"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/poolgate/poolgate/fakeupstream"
)

// dialGuardProbe hands the interpreted dial guard (plugin/dialguard.go) to the test as
// plain functions, so the address rule and the dialler run under Yaegi as in Traefik.
const dialGuardProbe = `package plugin

import (
	"context"
	"net/netip"
	"time"
)

// DialGuardProbe is test scaffolding written by tests/yaegi/dialguard_test.go; not plugin code.
func DialGuardProbe() (func(string) bool, func(string, bool) (string, string)) {
	refused := func(s string) bool { return refusedUpstreamAddr(netip.MustParseAddr(s)) }
	dial := func(addr string, allowPrivate bool) (string, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := guardedDialer(2*time.Second, allowPrivate)(ctx, "tcp", addr)
		if err != nil {
			return err.Error(), transportClass(err)
		}
		c.Close()
		return "", ""
	}
	return refused, dial
}
`

func loadDialGuardProbe(t *testing.T) (func(string) bool, func(string, bool) (string, string)) {
	t.Helper()
	vs, err := interpretWithProbe(t.TempDir(), "zz_dialguardprobe.go", dialGuardProbe, "DialGuardProbe")
	if err != nil {
		t.Fatal(err)
	}
	fn := vs[0]
	out := fn.Call([]reflect.Value{})
	return out[0].Interface().(func(string) bool), out[1].Interface().(func(string, bool) (string, string))
}

// acceptCounter listens on 127.0.0.1 and counts the connections that reach it.
func acceptCounter(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	n := new(atomic.Int64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return ln.Addr().String(), n
}

func TestDialGuardUnderYaegi(t *testing.T) {
	refused, dial := loadDialGuardProbe(t)
	addrs := []struct {
		addr    string
		refused bool
	}{
		{"127.0.0.1", true}, {"10.0.0.1", true}, {"172.16.0.1", true}, {"192.168.0.1", true},
		{"169.254.169.254", true}, {"100.64.0.1", true}, {"0.0.0.0", true}, {"0.1.2.3", true},
		{"::1", true}, {"::", true}, {"fc00::1", true}, {"fe80::1", true}, {"::ffff:127.0.0.1", true},
		{"8.8.8.8", false}, {"172.32.0.1", false}, {"100.128.0.1", false}, {"2606:4700::1111", false},
		{"::ffff:8.8.8.8", false},
	}
	for _, a := range addrs {
		if got := refused(a.addr); got != a.refused {
			t.Errorf("refusedUpstreamAddr(%s) = %v under Yaegi, want %v", a.addr, got, a.refused)
		}
	}

	addr, accepted := acceptCounter(t)
	_, port, _ := net.SplitHostPort(addr)
	dials := []struct {
		name         string
		addr         string
		allowPrivate bool
		wantClass    string // "" : connected
	}{
		{"literal loopback", addr, false, "upstream_refused"},
		{"localhost", net.JoinHostPort("localhost", port), false, "upstream_refused"},
		{"allowed", addr, true, ""},
	}
	for _, d := range dials {
		t.Run(d.name, func(t *testing.T) {
			before := accepted.Load()
			msg, class := dial(d.addr, d.allowPrivate)
			if class != d.wantClass {
				t.Fatalf("dial %s: error %q class %q, want class %q", d.addr, msg, class, d.wantClass)
			}
			if d.wantClass == "" {
				return
			}
			if !strings.Contains(msg, "loopback, link-local or private") {
				t.Errorf("error %q does not say why", msg)
			}
			time.Sleep(20 * time.Millisecond)
			if n := accepted.Load() - before; n != 0 {
				t.Fatalf("the listener saw %d connections, want none", n)
			}
		})
	}
}

// TestPrivateUpstreamRefusedUnderYaegi: an instance with allowPrivateUpstreams "false"
// (the string Traefik's file provider hands over) never reaches the fake upstream on
// 127.0.0.1, although another instance with the same header timeout holds pooled
// connections to it; the client gets 502 in the API's format and the account is not paused.
func TestPrivateUpstreamRefusedUnderYaegi(t *testing.T) {
	s := getStack(t)
	strict, err := plugin(t).newHandler(context.Background(), nextHandler(),
		s.pluginSettings(map[string]any{"allowPrivateUpstreams": "false"}), "poolgate-strict")
	if err != nil {
		t.Fatal(err)
	}
	tn := s.seed(t, accountSpec{name: "local", priority: 1, script: &fakeupstream.Script{Text: "must not be reached"}})
	acct := tn.accounts[0]
	// Warm the permissive instance's pool to the same upstream.
	if rec := serve(t, s.handler, "/v1/responses", bearer(tn.key), `{"model":"gpt-4o","input":"hi"}`); rec.Code != 200 {
		t.Fatalf("permissive instance: %d %s", rec.Code, rec.Body)
	}
	before := len(s.upstreamRequests(acct.cred))

	rec := serve(t, strict, "/v1/responses", bearer(tn.key), `{"model":"gpt-4o","input":"hi"}`)
	if rec.Code != http.StatusBadGateway {
		t.Fatalf("strict instance: %d %s, want 502", rec.Code, rec.Body)
	}
	if e := decodeError(t, rec); e.Error.Message != "Upstream request failed" {
		t.Errorf("error %+v, want Upstream request failed", e.Error)
	}
	if n := len(s.upstreamRequests(acct.cred)) - before; n != 0 {
		t.Errorf("the fake upstream got %d requests from the strict instance, want none", n)
	}
	var a struct {
		State struct {
			PausedUntil *time.Time `json:"paused_until"`
		} `json:"state"`
	}
	s.admin.do(t, http.MethodGet, "/accounts/"+itoa(acct.id), nil, http.StatusOK, &a)
	if a.State.PausedUntil != nil {
		t.Errorf("paused_until = %v: a refused address must not pause the account", a.State.PausedUntil)
	}
	s.waitIdle(t, tn)
}
