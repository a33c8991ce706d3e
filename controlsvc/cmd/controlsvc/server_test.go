package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/app"
	"github.com/poolgate/poolgate/controlsvc/internal/config"
	"github.com/poolgate/poolgate/controlsvc/internal/store/storetest"
	"github.com/poolgate/poolgate/internal/testenv"
)

// No server-wide bound may cut an admit call that waits its longest: main's server has no
// WriteTimeout, and its shutdown allowance covers the longest wait, for any queue timeouts.
func TestServerBoundsCoverTheLongestWait(t *testing.T) {
	t.Parallel()
	srv := newServer(http.NotFoundHandler(), defaultServerTimeouts)
	if srv.WriteTimeout != 0 {
		t.Errorf("WriteTimeout = %s, want none (admit sets its own)", srv.WriteTimeout)
	}
	if srv.ReadTimeout <= 0 || srv.ReadHeaderTimeout <= 0 || srv.IdleTimeout <= 0 {
		t.Errorf("read %s, header %s, idle %s: slow clients must stay bounded", srv.ReadTimeout,
			srv.ReadHeaderTimeout, srv.IdleTimeout)
	}
	tests := []struct {
		name string
		wait config.WaitQueues
		want time.Duration // the longest wait
	}{
		{name: "defaults", wait: config.DefaultWaitQueues(), want: 150 * time.Second},
		{name: "long fallback queue", wait: config.WaitQueues{UserTimeout: time.Minute, StickyTimeout: time.Second,
			AccountTimeout: 10 * time.Minute}, want: 11 * time.Minute},
	}
	for _, tt := range tests {
		if got := tt.wait.Longest(); got != tt.want {
			t.Errorf("%s: longest wait %s, want %s", tt.name, got, tt.want)
		}
		if got := shutdownAllowance(config.Config{Wait: tt.wait}); got <= tt.want {
			t.Errorf("%s: shutdown allowance %s does not cover the longest wait %s", tt.name, got, tt.want)
		}
	}
}

// An admit call that waits longer than the server's read bound and the other routes' write
// bound still gets its grant, through main's server and app: those bounds are shortened to
// 1 s here so that a wait of a few seconds outlives them, as a 78 s wait outlived the old
// 60 s write timeout.
func TestAdmitWaitOutlivesServerBounds(t *testing.T) {
	t.Parallel()
	cfg := config.Config{DatabaseURL: testenv.PostgresURL(t), RedisURL: testenv.RedisURL(t), AdminToken: "admin-token-test",
		PluginSecret: testPluginSecret, LeaseTTL: time.Minute, LogLevel: "warn", Wait: config.DefaultWaitQueues(),
		ReservationTTL: config.DefaultReservationTTL, CredentialKeys: storetest.Keys(t)}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	a, err := app.New(ctx, cfg)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	tm := defaultServerTimeouts
	tm.read, tm.routeWrite = time.Second, time.Second
	srv := newServer(a.Handler(), tm)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); a.Close() })
	base := "http://" + ln.Addr().String()
	rdb := testenv.RedisClient(t, cfg.RedisURL)

	tests := []struct {
		name                  string
		userConc, accountConc int
		session               string // session_hash of both requests
		queue                 func(f fixture) string
	}{
		{name: "in the user queue", userConc: 1, accountConc: 10,
			queue: func(f fixture) string { return fmt.Sprintf("pg:{u:%d}:wait", f.user) }},
		{name: "on a busy sticky account", userConc: 5, accountConc: 1, session: strings.Repeat("ab", 32),
			queue: func(f fixture) string { return fmt.Sprintf("pg:{a:%d}:wait", f.account) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := seedWith(t, cfg.DatabaseURL, tt.userConc, tt.accountConc)
			admit := func(reqID string) map[string]any {
				b := admitBody(f, reqID)
				if tt.session != "" {
					b["session_hash"] = tt.session
				}
				return b
			}
			holder := mustGrant(t, post(context.Background(), base+"/internal/v1/admit", admit("req_holder_"+t.Name())))
			waited := make(chan answer, 1)
			go func() { waited <- post(context.Background(), base+"/internal/v1/admit", admit("req_waiter_"+t.Name())) }()
			waitQueuedOn(t, rdb, tt.queue(f), 1)
			const hold = 2500 * time.Millisecond
			time.Sleep(hold)
			wantAccepted(t, post(context.Background(), base+"/internal/v1/reports", reportBody(holder)))
			var res answer
			select {
			case res = <-waited:
			case <-time.After(10 * time.Second):
				t.Fatal("the waiting admission got no answer")
			}
			g := mustGrant(t, res)
			wantAccepted(t, post(context.Background(), base+"/internal/v1/reports", reportBody(g)))
			wantNothingHeld(t, rdb, f)
			if n := queryInt(t, cfg.DatabaseURL, `SELECT count(*) FROM usage_records WHERE user_id = $1`, f.user); n != 2 {
				t.Errorf("%d usage records, want 2", n)
			}
		})
	}
}
