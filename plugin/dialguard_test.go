package plugin

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestRefusedUpstreamAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		addr    string
		refused bool
	}{
		{"loopback v4", "127.0.0.1", true},
		{"loopback v4 range", "127.200.1.1", true},
		{"this network", "0.1.2.3", true},
		{"unspecified v4", "0.0.0.0", true},
		{"private 10", "10.1.2.3", true},
		{"private 172.16", "172.16.0.1", true},
		{"private 172.31", "172.31.255.255", true},
		{"public 172.32", "172.32.0.1", false},
		{"private 192.168", "192.168.1.1", true},
		{"link-local metadata", "169.254.169.254", true},
		{"cgnat low", "100.64.0.1", true},
		{"cgnat high", "100.127.255.255", true},
		{"public 100.128", "100.128.0.1", false},
		{"multicast v4", "224.0.0.1", true},
		{"public v4", "93.184.216.34", false},
		{"public v4 8.8.8.8", "8.8.8.8", false},
		{"loopback v6", "::1", true},
		{"unspecified v6", "::", true},
		{"ula fc00", "fc00::1", true},
		{"ula fd", "fd12:3456::1", true},
		{"link-local v6", "fe80::1", true},
		{"link-local v6 zone", "fe80::1%eth0", true},
		{"multicast v6", "ff02::1", true},
		{"mapped loopback", "::ffff:127.0.0.1", true},
		{"mapped private", "::ffff:10.0.0.1", true},
		{"mapped metadata", "::ffff:169.254.169.254", true},
		{"mapped public", "::ffff:8.8.8.8", false},
		{"public v6", "2606:4700::1111", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ip := netip.MustParseAddr(tt.addr)
			if got := refusedUpstreamAddr(ip); got != tt.refused {
				t.Fatalf("refusedUpstreamAddr(%s) = %v, want %v", tt.addr, got, tt.refused)
			}
		})
	}
	if !refusedUpstreamAddr(netip.Addr{}) {
		t.Fatal("the zero Addr must be refused")
	}
}

// countingListener accepts on 127.0.0.1 and counts the connections that reached it.
func countingListener(t *testing.T) (string, *atomic.Int64) {
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

func TestGuardedDialer(t *testing.T) {
	t.Parallel()
	addr, accepted := countingListener(t)
	_, port, _ := net.SplitHostPort(addr)
	tests := []struct {
		name         string
		addr         string
		allowPrivate bool
		refused      bool
	}{
		{"literal loopback refused", addr, false, true},
		{"localhost refused after resolving", net.JoinHostPort("localhost", port), false, true},
		{"mapped loopback refused", net.JoinHostPort("::ffff:127.0.0.1", port), false, true},
		{"literal loopback allowed", addr, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := accepted.Load()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := guardedDialer(2*time.Second, tt.allowPrivate)(ctx, "tcp", tt.addr)
			if c != nil {
				c.Close()
			}
			if tt.refused {
				if !errors.Is(err, errUpstreamRefused) {
					t.Fatalf("dial %s: err = %v, want errUpstreamRefused", tt.addr, err)
				}
				if transportClass(err) != classUpstreamRefused {
					t.Fatalf("class = %q", transportClass(err))
				}
				time.Sleep(20 * time.Millisecond) // let a connection that slipped through be counted
				if got := accepted.Load(); got != before {
					t.Fatalf("the listener saw %d connections, want none", got-before)
				}
				return
			}
			if err != nil {
				t.Fatalf("dial %s: %v", tt.addr, err)
			}
		})
	}
}

// TestPrivateUpstreamRefused: with allowPrivateUpstreams off, an account on 127.0.0.1 is
// never connected to; the client gets 502 in the API's format, and the failed attempt goes
// to controlsvc as upstream_refused (which does not pause the account).
func TestPrivateUpstreamRefused(t *testing.T) {
	t.Parallel()
	addr, accepted := countingListener(t)
	stub := newContractStub(t,
		stubAccount{id: 1, baseURL: "http://" + addr, apiKey: "up-1"},
		stubAccount{id: 2, baseURL: "http://localhost:" + addr[strings.LastIndex(addr, ":")+1:], apiKey: "up-2"},
	)
	p := newTestPlugin(t, stub, func(c *Config) { c.AllowPrivateUpstreams = false })

	rec := do(p, "/v1/responses", `{"model":"gpt-x"}`, nil)
	if rec.Code != 502 || !strings.Contains(rec.Body.String(), `"Upstream request failed"`) {
		t.Fatalf("client got %d %q, want 502 Upstream request failed", rec.Code, rec.Body.String())
	}
	calls := stub.admitCalls()
	if len(calls) != 3 { // the third finds no account left
		t.Fatalf("%d admit calls, want 3", len(calls))
	}
	want := &failedAttempt{AccountID: 1, ErrorClass: classUpstreamRefused}
	if !reflect.DeepEqual(calls[1].Failed, want) {
		t.Fatalf("re-admission failed = %+v, want %+v", calls[1].Failed, want)
	}
	if f := calls[2].Failed; f == nil || f.AccountID != 2 || f.ErrorClass != classUpstreamRefused {
		t.Fatalf("second re-admission failed = %+v, want account 2 upstream_refused", f)
	}
	r := stub.waitReport()
	if r.ErrorClass != classUpstreamRefused || len(r.Attempts) != 2 ||
		r.Attempts[0].ErrorClass != classUpstreamRefused || r.Attempts[1].ErrorClass != classUpstreamRefused {
		t.Fatalf("report = %+v", r)
	}
	if n := accepted.Load(); n != 0 {
		t.Fatalf("the upstream listener saw %d connections, want none", n)
	}
}
