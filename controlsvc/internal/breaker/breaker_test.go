package breaker

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func newRedis(t *testing.T) *redis.Client {
	t.Helper()
	return testenv.RedisClient(t, testenv.RedisURL(t))
}

// verdict reads one breaker through a pipeline, as admission does.
func verdict(t *testing.T, rdb *redis.Client, acc int64, model string, now time.Time) Verdict {
	t.Helper()
	var cmd *redis.StringCmd
	_, err := rdb.Pipelined(context.Background(), func(p redis.Pipeliner) error {
		cmd = Read(context.Background(), p, acc, model)
		return nil
	})
	if err != nil && err != redis.Nil {
		t.Fatalf("reading breaker: %v", err)
	}
	return VerdictOf(cmd, now)
}

func mustFail(t *testing.T, b *Breakers, acc int64, model, grant string, s Settings, now time.Time) bool {
	t.Helper()
	opened, err := b.Fail(context.Background(), acc, model, "transport", grant, s, now)
	if err != nil {
		t.Fatal(err)
	}
	return opened
}

var testSettings = Settings{Threshold: 3, Window: time.Minute, Cooldown: 30 * time.Second}

func TestBreakerOpensAtThresholdWithinWindow(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t)
	b := New(rdb)
	const acc = 9101
	t0 := time.UnixMilli(1_800_000_000_000)
	// Two failures, then the window passes: the third does not open.
	mustFail(t, b, acc, "m", "g1", testSettings, t0)
	mustFail(t, b, acc, "m", "g2", testSettings, t0.Add(time.Second))
	if opened := mustFail(t, b, acc, "m", "g3", testSettings, t0.Add(61*time.Second+time.Millisecond)); opened {
		t.Fatal("a failure outside the window of the first two opened the breaker")
	}
	if v := verdict(t, rdb, acc, "m", t0.Add(62*time.Second)); v != Closed {
		t.Fatalf("verdict %d, want closed", v)
	}
	// Two more within the window of the third: open, for model m only.
	mustFail(t, b, acc, "m", "g4", testSettings, t0.Add(62*time.Second))
	if opened := mustFail(t, b, acc, "m", "g5", testSettings, t0.Add(63*time.Second)); !opened {
		t.Fatal("the third failure within the window did not open the breaker")
	}
	at := t0.Add(64 * time.Second)
	if v := verdict(t, rdb, acc, "m", at); v != Open {
		t.Fatalf("verdict %d, want open", v)
	}
	if v := verdict(t, rdb, acc, "other", at); v != Closed {
		t.Fatalf("another model's verdict %d, want closed", v)
	}
	views, err := b.List(context.Background(), acc, at)
	if err != nil {
		t.Fatal(err)
	}
	if len(views) != 1 || views[0].Model != "m" || views[0].State != "open" || views[0].Failures != 3 ||
		views[0].Reason != "transport" || !views[0].NextProbeAt.Equal(t0.Add(93*time.Second)) {
		t.Fatalf("views %+v", views)
	}
	if pttl := rdb.PTTL(context.Background(), Key(acc)).Val(); pttl <= 0 {
		t.Fatalf("breaker key without a TTL: %v", pttl)
	}
}

// Two controlsvc instances (two clients) race for the probe: exactly one gets it.
func TestBreakerHalfOpenLetsOneProbeAcrossInstances(t *testing.T) {
	t.Parallel()
	url := testenv.RedisURL(t)
	rdb1, rdb2 := testenv.RedisClient(t, url), testenv.RedisClient(t, url)
	b1, b2 := New(rdb1), New(rdb2)
	const acc = 9102
	t0 := time.UnixMilli(1_800_000_000_000)
	for i := 0; i < 3; i++ {
		mustFail(t, b1, acc, "m", "g", testSettings, t0)
	}
	ctx := context.Background()
	if ok, err := b1.Claim(ctx, acc, "m", "early", t0.Add(29*time.Second)); err != nil || ok {
		t.Fatalf("claim during the cool-down: %v %v", ok, err)
	}
	after := t0.Add(31 * time.Second)
	if v := verdict(t, rdb2, acc, "m", after); v != HalfOpen {
		t.Fatalf("verdict after the cool-down %d, want half-open", v)
	}
	results := make(chan bool, 2)
	for i, b := range []*Breakers{b1, b2} {
		grant := []string{"p1", "p2"}[i]
		go func() {
			ok, err := b.Claim(ctx, acc, "m", grant, after)
			if err != nil {
				t.Error(err)
			}
			results <- ok
		}()
	}
	won := 0
	for i := 0; i < 2; i++ {
		if <-results {
			won++
		}
	}
	if won != 1 {
		t.Fatalf("%d instances claimed the probe, want exactly 1", won)
	}
	if v := verdict(t, rdb1, acc, "m", after); v != Open {
		t.Fatalf("verdict with the probe in flight %d, want open", v)
	}
	// A claim nobody uses is given back: the next request may probe.
	for _, g := range []string{"p1", "p2"} {
		if err := b1.Unclaim(ctx, acc, "m", g); err != nil {
			t.Fatal(err)
		}
	}
	if v := verdict(t, rdb1, acc, "m", after); v != HalfOpen {
		t.Fatalf("verdict after unclaim %d, want half-open", v)
	}
	// A probe that never reports lets another probe after ProbeTTL.
	if ok, _ := b2.Claim(ctx, acc, "m", "p3", after); !ok {
		t.Fatal("claim after unclaim refused")
	}
	if ok, _ := b1.Claim(ctx, acc, "m", "p4", after.Add(ProbeTTL+time.Millisecond)); !ok {
		t.Fatal("claim after the probe's TTL refused")
	}
}

func TestBreakerProbeSuccessCloses(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t)
	b := New(rdb)
	const acc = 9103
	ctx := context.Background()
	t0 := time.UnixMilli(1_800_000_000_000)
	for i := 0; i < 3; i++ {
		mustFail(t, b, acc, "m", "g", testSettings, t0)
	}
	if _, err := b.DialFailure(ctx, acc); err != nil {
		t.Fatal(err)
	}
	// An answer of a request admitted before the breaker opened does not close it.
	if n, err := b.Succeed(ctx, []Answer{{AccountID: acc, Model: "m", GrantID: "old"}}, t0.Add(time.Second)); err != nil || n != 0 {
		t.Fatalf("answer during the cool-down closed %d (%v)", n, err)
	}
	if n := rdb.Exists(ctx, dialKey(acc)).Val(); n != 0 {
		t.Fatal("an answer left the dial failure count")
	}
	after := t0.Add(31 * time.Second)
	if ok, _ := b.Claim(ctx, acc, "m", "probe", after); !ok {
		t.Fatal("claim refused")
	}
	if n, err := b.Succeed(ctx, []Answer{{AccountID: acc, Model: "m", GrantID: "probe"}}, after.Add(time.Second)); err != nil || n != 1 {
		t.Fatalf("probe answer closed %d (%v), want 1", n, err)
	}
	if v := verdict(t, rdb, acc, "m", after.Add(time.Second)); v != Closed {
		t.Fatalf("verdict %d, want closed", v)
	}
	if views, _ := b.List(ctx, acc, after); len(views) != 0 {
		t.Fatalf("views after close %+v", views)
	}
}

// A failed probe re-opens with the cool-down doubled, up to MaxCooldown; Clear closes.
func TestBreakerFailedProbeDoublesCooldownToCap(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t)
	b := New(rdb)
	const acc = 9104
	ctx := context.Background()
	now := time.UnixMilli(1_800_000_000_000)
	for i := 0; i < 3; i++ {
		mustFail(t, b, acc, "m", "g", testSettings, now)
	}
	want := testSettings.Cooldown
	openUntil := now.Add(want)
	for i := 0; i < 8; i++ {
		now = openUntil
		if ok, _ := b.Claim(ctx, acc, "m", "probe", now); !ok {
			t.Fatalf("round %d: claim refused", i)
		}
		if opened := mustFail(t, b, acc, "m", "probe", testSettings, now); !opened {
			t.Fatalf("round %d: a failed probe did not re-open", i)
		}
		want = min(2*want, MaxCooldown)
		views, err := b.List(ctx, acc, now)
		if err != nil || len(views) != 1 {
			t.Fatalf("round %d: views %+v %v", i, views, err)
		}
		if got := views[0].NextProbeAt.Sub(now); got != want {
			t.Fatalf("round %d: cool-down %v, want %v", i, got, want)
		}
		openUntil = views[0].NextProbeAt
	}
	if want != MaxCooldown {
		t.Fatalf("the cool-down never reached the cap: %v", want)
	}
	if err := b.Clear(ctx, acc); err != nil {
		t.Fatal(err)
	}
	if v := verdict(t, rdb, acc, "m", now); v != Closed {
		t.Fatalf("verdict after Clear %d, want closed", v)
	}
}

func TestSettingsOf(t *testing.T) {
	i := func(v int64) *int64 { return &v }
	tests := []struct {
		name                        string
		threshold, window, cooldown *int64
		want                        Settings
	}{
		{"defaults", nil, nil, nil, Settings{3, 60 * time.Second, 30 * time.Second}},
		{"set", i(5), i(1000), i(200), Settings{5, time.Second, 200 * time.Millisecond}},
		{"zero is default", i(0), i(0), i(0), Settings{3, 60 * time.Second, 30 * time.Second}},
		{"cool-down capped", nil, nil, i(10_000_000), Settings{3, 60 * time.Second, MaxCooldown}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SettingsOf(tt.threshold, tt.window, tt.cooldown); got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
