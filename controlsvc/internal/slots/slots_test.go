package slots

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func newRedis(t *testing.T) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(testenv.RedisURL(t))
	if err != nil {
		t.Fatalf("parsing redis url: %v", err)
	}
	opts.PoolSize = 64
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// mustAcquire enters grant without queueing and reports whether it holds a lease.
func mustAcquire(t *testing.T, s *Slots, kind string, id int64, grant string, limit int) bool {
	t.Helper()
	res, err := s.Enter(context.Background(), Entry{Kind: kind, ID: id, GrantID: grant, Limit: limit})
	if err != nil {
		t.Fatalf("Enter(%s %d %s): %v", kind, id, grant, err)
	}
	return res == Held
}

func mustCount(t *testing.T, s *Slots, kind string, id int64) int64 {
	t.Helper()
	l, err := s.Loads(context.Background(), kind, []int64{id})
	if err != nil {
		t.Fatalf("Loads: %v", err)
	}
	return l[id].Active
}

func TestEnterIsIdempotentPerGrant(t *testing.T) {
	t.Parallel()
	s := New(newRedis(t), time.Minute)
	for i := range 3 {
		if !mustAcquire(t, s, KindUser, 1, "g_a", 1) {
			t.Fatalf("re-acquire %d by the holder refused", i)
		}
	}
	if got := mustCount(t, s, KindUser, 1); got != 1 {
		t.Fatalf("count = %d after repeated acquires, want 1", got)
	}
	if mustAcquire(t, s, KindUser, 1, "g_b", 1) {
		t.Fatal("second grant acquired a full slot set")
	}
}

func TestReleaseFreesTheSlot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(newRedis(t), time.Minute)
	if !mustAcquire(t, s, KindUser, 2, "g_a", 1) {
		t.Fatal("first acquire refused")
	}
	if mustAcquire(t, s, KindUser, 2, "g_b", 1) {
		t.Fatal("acquire over the limit granted")
	}
	if err := s.Release(ctx, KindUser, 2, "g_a"); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if err := s.Release(ctx, KindUser, 2, "g_a"); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	if err := s.Release(ctx, KindUser, 99, "g_never"); err != nil {
		t.Fatalf("Release of an unknown lease: %v", err)
	}
	if !mustAcquire(t, s, KindUser, 2, "g_b", 1) {
		t.Fatal("acquire after release refused")
	}
}

func TestLeaseExpiresWithoutRenewal(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t)
	s := New(rdb, 300*time.Millisecond)
	if !mustAcquire(t, s, KindAccount, 3, "g_a", 1) {
		t.Fatal("acquire refused")
	}
	pttl := rdb.PTTL(context.Background(), "pg:{a:3}:slots").Val()
	if pttl <= 0 || pttl > 300*time.Millisecond {
		t.Fatalf("key PTTL = %v, want in (0, 300ms]", pttl)
	}
	time.Sleep(450 * time.Millisecond)
	if got := mustCount(t, s, KindAccount, 3); got != 0 {
		t.Fatalf("count = %d after the TTL, want 0", got)
	}
	if !mustAcquire(t, s, KindAccount, 3, "g_b", 1) {
		t.Fatal("acquire after expiry refused")
	}
}

func TestRenewKeepsOnlyExistingLeases(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(newRedis(t), 400*time.Millisecond)
	if !mustAcquire(t, s, KindUser, 4, "g_a", 2) {
		t.Fatal("acquire refused")
	}
	// Renew every 150 ms for 900 ms: the lease outlives its TTL twice over.
	for range 6 {
		time.Sleep(150 * time.Millisecond)
		ok, err := s.RenewLease(ctx, KindUser, 4, "g_a")
		if err != nil || !ok {
			t.Fatalf("RenewLease = %v, %v; want true", ok, err)
		}
	}
	if got := mustCount(t, s, KindUser, 4); got != 1 {
		t.Fatalf("count = %d after renewals, want 1", got)
	}
	ok, err := s.RenewLease(ctx, KindUser, 4, "g_other")
	if err != nil || ok {
		t.Fatalf("RenewLease of a missing lease = %v, %v; want false", ok, err)
	}
	if got := mustCount(t, s, KindUser, 4); got != 1 {
		t.Fatalf("count = %d, renewing a missing lease must not create one", got)
	}
	time.Sleep(550 * time.Millisecond)
	ok, err = s.RenewLease(ctx, KindUser, 4, "g_a")
	if err != nil || ok {
		t.Fatalf("RenewLease after expiry = %v, %v; want false", ok, err)
	}
}

func TestRenewMany(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := newRedis(t)
	s := New(rdb, time.Minute)
	mustAcquire(t, s, KindUser, 1, "g_a", 5)
	mustAcquire(t, s, KindAccount, 2, "g_a", 5)
	// A fresh server has no scripts cached: RenewMany must load its script itself.
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatalf("SCRIPT FLUSH: %v", err)
	}
	got, err := s.RenewMany(ctx, []Lease{
		{Kind: KindUser, ID: 1, GrantID: "g_a"},
		{Kind: KindAccount, ID: 2, GrantID: "g_a"},
		{Kind: KindAccount, ID: 3, GrantID: "g_a"},
	})
	if err != nil {
		t.Fatalf("RenewMany: %v", err)
	}
	want := []bool{true, true, false}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("RenewMany = %v, want %v", got, want)
		}
	}
}

func TestLoadsPurgeExpiredLeases(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := newRedis(t)
	s := New(rdb, time.Minute)
	for i := range 3 {
		mustAcquire(t, s, KindAccount, 10, fmt.Sprintf("g_%d", i), 10)
	}
	mustAcquire(t, s, KindAccount, 11, "g_x", 10)
	mustAcquire(t, s, KindUser, 10, "g_user", 10) // other kind, same id: separate set
	// An expired lease left behind by a crashed gateway is purged by Loads.
	if err := rdb.ZAdd(ctx, "pg:{a:11}:slots", redis.Z{Score: 1, Member: "g_stale"}).Err(); err != nil {
		t.Fatalf("ZADD: %v", err)
	}
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatalf("SCRIPT FLUSH: %v", err)
	}
	got, err := s.Loads(ctx, KindAccount, []int64{10, 11, 12})
	if err != nil {
		t.Fatalf("Loads: %v", err)
	}
	want := map[int64]Load{10: {Active: 3}, 11: {Active: 1}, 12: {}}
	if len(got) != len(want) {
		t.Fatalf("Loads = %v, want %v", got, want)
	}
	for id, l := range want {
		if got[id] != l {
			t.Fatalf("Loads = %v, want %v", got, want)
		}
	}
	if rdb.ZScore(ctx, "pg:{a:11}:slots", "g_stale").Err() != redis.Nil {
		t.Fatal("expired lease still stored after Loads")
	}
	empty, err := s.Loads(ctx, KindUser, nil)
	if err != nil || len(empty) != 0 {
		t.Fatalf("Loads(nil) = %v, %v; want empty", empty, err)
	}
}

func TestNoSlotWithoutPositiveLimit(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t)
	s := New(rdb, time.Minute)
	for _, limit := range []int{0, -1} {
		if mustAcquire(t, s, KindUser, 5, "g_a", limit) {
			t.Fatalf("Enter with limit %d granted a slot", limit)
		}
	}
	if n := rdb.Exists(context.Background(), "pg:{u:5}:slots").Val(); n != 0 {
		t.Fatal("a refused acquire wrote a key")
	}
}

func TestKeysAndKinds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		kind    string
		id      int64
		want    string
		wantErr error
	}{
		{name: "user", kind: KindUser, id: 42, want: "pg:{u:42}:slots"},
		{name: "account", kind: KindAccount, id: 7, want: "pg:{a:7}:slots"},
		{name: "unknown", kind: "group", id: 1, wantErr: ErrUnknownKind},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Key(tt.kind, tt.id)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("Key = %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
	s := New(nil, time.Minute) // never reaches Redis: the kind is checked first
	if _, err := s.Enter(context.Background(), Entry{Kind: "group", ID: 1, GrantID: "g", Limit: 1}); !errors.Is(err, ErrUnknownKind) {
		t.Fatalf("Enter with unknown kind = %v, want ErrUnknownKind", err)
	}
	if _, err := s.Loads(context.Background(), "group", []int64{1}); !errors.Is(err, ErrUnknownKind) {
		t.Fatalf("Loads with unknown kind = %v, want ErrUnknownKind", err)
	}
}

func TestReleaseMany(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(newRedis(t), time.Minute)
	for _, g := range []string{"g_a", "g_b", "g_c"} {
		mustAcquire(t, s, KindUser, 1, g, 5)
		mustAcquire(t, s, KindAccount, 7, g, 5)
	}
	mustAcquire(t, s, KindAccount, 8, "g_a", 5)
	tests := []struct {
		name    string
		give    []Lease
		wantErr error
		want    map[string]int64 // "kind/id" → live count afterwards
	}{
		{
			name: "several sets and grants in one call, repeats and unknown leases included",
			give: []Lease{
				{Kind: KindUser, ID: 1, GrantID: "g_a"},
				{Kind: KindAccount, ID: 7, GrantID: "g_a"},
				{Kind: KindAccount, ID: 8, GrantID: "g_a"},
				{Kind: KindUser, ID: 1, GrantID: "g_b"},
				{Kind: KindUser, ID: 1, GrantID: "g_b"},
				{Kind: KindAccount, ID: 9, GrantID: "g_never"},
			},
			want: map[string]int64{"user/1": 1, "account/7": 2, "account/8": 0},
		},
		{
			name:    "an unknown kind fails before anything is released",
			give:    []Lease{{Kind: KindUser, ID: 1, GrantID: "g_c"}, {Kind: "group", ID: 1, GrantID: "g_c"}},
			wantErr: ErrUnknownKind,
			want:    map[string]int64{"user/1": 1, "account/7": 2},
		},
		{
			name: "nothing to release",
			give: nil,
			want: map[string]int64{"user/1": 1, "account/7": 2},
		},
	}
	for _, tt := range tests {
		// Sequential: each case starts from the state the previous one left.
		err := s.ReleaseMany(ctx, tt.give)
		if !errors.Is(err, tt.wantErr) {
			t.Fatalf("%s: ReleaseMany error %v, want %v", tt.name, err, tt.wantErr)
		}
		for set, want := range tt.want {
			kind, id := splitSet(t, set)
			if got := mustCount(t, s, kind, id); got != want {
				t.Fatalf("%s: %s holds %d leases, want %d", tt.name, set, got, want)
			}
		}
	}
}

func splitSet(t *testing.T, set string) (string, int64) {
	t.Helper()
	for i := 0; i < len(set); i++ {
		if set[i] == '/' {
			var id int64
			if _, err := fmt.Sscan(set[i+1:], &id); err != nil {
				t.Fatal(err)
			}
			return set[:i], id
		}
	}
	t.Fatalf("bad set %q", set)
	return "", 0
}
