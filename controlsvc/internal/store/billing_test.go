package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// billSetup describes one user, group and key to seed.
type billSetup struct {
	balance    int64
	mode       string  // "" = balance
	limits     []any   // daily, weekly, monthly limit micros (nil entries = unlimited)
	maxReserve int64   // 0 = default
	quota      *int64  // key quota
	keyExpires *string // RFC 3339
}

type billFixture struct {
	st                *Store
	user, group, key  int64
	sub               int64 // set by withSubscription
	subscriptionStart time.Time
}

func billID(t *testing.T, st *Store, sql string, args ...any) int64 {
	t.Helper()
	var id int64
	if err := st.Pool.QueryRow(context.Background(), sql, args...).Scan(&id); err != nil {
		t.Fatalf("seeding %q: %v", sql, err)
	}
	return id
}

func billExec(t *testing.T, st *Store, sql string, args ...any) {
	t.Helper()
	if _, err := st.Pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

func seedBill(t *testing.T, st *Store, s billSetup) *billFixture {
	t.Helper()
	mode := s.mode
	if mode == "" {
		mode = BillingBalance
	}
	limits := s.limits
	for len(limits) < 3 {
		limits = append(limits, nil)
	}
	maxReserve := s.maxReserve
	if maxReserve == 0 {
		maxReserve = DefaultMaxReserveMicros
	}
	f := &billFixture{st: st}
	f.user = billID(t, st, `INSERT INTO users (name, balance_micros) VALUES ('u', $1) RETURNING id`, s.balance)
	f.group = billID(t, st, `INSERT INTO groups (name, platform, billing_mode, daily_limit_micros, weekly_limit_micros,
		monthly_limit_micros, max_reserve_micros) VALUES ('g' || nextval('groups_id_seq'), 'openai', $1, $2, $3, $4, $5) RETURNING id`,
		mode, limits[0], limits[1], limits[2], maxReserve)
	f.key = billID(t, st, `INSERT INTO api_keys (user_id, group_id, key_hash, key_prefix, quota_micros, expires_at)
		VALUES ($1, $2, 'h' || nextval('api_keys_id_seq'), 'sk-pg', $3, $4::timestamptz) RETURNING id`,
		f.user, f.group, s.quota, s.keyExpires)
	return f
}

// withSubscription adds an active subscription from start for 90 days.
func (f *billFixture) withSubscription(t *testing.T, start time.Time) *billFixture {
	t.Helper()
	f.sub = billID(t, f.st, `INSERT INTO subscriptions (user_id, group_id, starts_at, expires_at)
		VALUES ($1, $2, $3, $4) RETURNING id`, f.user, f.group, start, start.Add(90*24*time.Hour))
	f.subscriptionStart = start
	return f
}

func (f *billFixture) reserve(t *testing.T, req string, amount int64, now time.Time, loc *time.Location) (Reservation, *BillingRefusal) {
	t.Helper()
	res, refusal, err := f.st.reserve(context.Background(), ReserveInput{RequestID: req, UserID: f.user, APIKeyID: f.key,
		GroupID: f.group, AmountMicros: amount, MinAmountMicros: amount}, now, loc) // the whole amount is needed: reserveUpTo for less
	if err != nil {
		t.Fatalf("Reserve(%s): %v", req, err)
	}
	return res, refusal
}

func (f *billFixture) settle(t *testing.T, req string, cost int64, now time.Time, loc *time.Location) SettleResult {
	t.Helper()
	var res SettleResult
	err := f.st.WithTx(context.Background(), func(tx pgx.Tx) error {
		var err error
		res, err = settleInTx(context.Background(), tx, Settlement{RequestID: req, UserID: f.user, APIKeyID: f.key,
			GroupID: f.group, CostMicros: cost}, now, loc)
		return err
	})
	if err != nil {
		t.Fatalf("settling %s: %v", req, err)
	}
	return res
}

// sums reads every money column billing touches.
type billSums struct {
	balance, userReserved                 int64
	quotaUsed, quotaReserved              int64
	subReserved, daily, weekly, monthly   int64
	reservations                          int64
	dailyStart, weeklyStart, monthlyStart *time.Time
}

func (f *billFixture) sums(t *testing.T) billSums {
	t.Helper()
	var s billSums
	err := f.st.Pool.QueryRow(context.Background(), `
SELECT u.balance_micros, u.reserved_micros, k.quota_used_micros, k.quota_reserved_micros,
       COALESCE(s.reserved_micros, 0), COALESCE(s.daily_used_micros, 0), COALESCE(s.weekly_used_micros, 0),
       COALESCE(s.monthly_used_micros, 0), (SELECT count(*) FROM reservations r WHERE r.user_id = u.id),
       s.daily_window_start, s.weekly_window_start, s.monthly_window_start
FROM users u JOIN api_keys k ON k.id = $2 LEFT JOIN subscriptions s ON s.id = $3
WHERE u.id = $1`, f.user, f.key, f.sub).Scan(&s.balance, &s.userReserved, &s.quotaUsed, &s.quotaReserved,
		&s.subReserved, &s.daily, &s.weekly, &s.monthly, &s.reservations, &s.dailyStart, &s.weeklyStart, &s.monthlyStart)
	if err != nil {
		t.Fatalf("reading sums: %v", err)
	}
	return s
}

var billNow = time.Date(2024, 10, 27, 12, 0, 0, 0, time.UTC) // a 25-hour day in Berlin

func TestReserveRules(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	past, future := "2024-10-01T00:00:00Z", "2025-01-01T00:00:00Z"
	exact := billNow.Format(time.RFC3339)
	tests := []struct {
		name       string
		setup      billSetup
		amount     int64
		wantKind   RefusalKind
		wantMsg    string
		wantAmount int64
		wantQuota  bool
	}{
		{name: "enough balance", setup: billSetup{balance: 1000}, amount: 1000, wantAmount: 1000},
		{name: "estimate capped by max_reserve", setup: billSetup{balance: 10_000, maxReserve: 300}, amount: 5000, wantAmount: 300},
		{name: "negative estimate holds 0", setup: billSetup{balance: 10}, amount: -5, wantAmount: 0},
		{name: "balance short by one micro", setup: billSetup{balance: 999}, amount: 1000,
			wantKind: RefuseInsufficientBalance, wantMsg: "Insufficient account balance"},
		{name: "zero balance refuses even a free request", setup: billSetup{balance: 0}, amount: 0,
			wantKind: RefuseInsufficientBalance, wantMsg: "Insufficient account balance"},
		{name: "negative balance", setup: billSetup{balance: -1}, amount: 0, wantKind: RefuseInsufficientBalance},
		{name: "key expired", setup: billSetup{balance: 1000, keyExpires: &past}, amount: 1,
			wantKind: RefuseKeyExpired, wantMsg: "API key has expired"},
		{name: "key expiring exactly now is expired", setup: billSetup{balance: 1000, keyExpires: &exact}, amount: 1,
			wantKind: RefuseKeyExpired},
		{name: "key expiry before balance", setup: billSetup{balance: 0, keyExpires: &past}, amount: 1, wantKind: RefuseKeyExpired},
		{name: "key not yet expired", setup: billSetup{balance: 1000, keyExpires: &future}, amount: 10, wantAmount: 10},
		{name: "quota fits", setup: billSetup{balance: 1000, quota: ptr(int64(500))}, amount: 500, wantAmount: 500, wantQuota: true},
		{name: "quota too small", setup: billSetup{balance: 1000, quota: ptr(int64(499))}, amount: 500,
			wantKind: RefuseKeyQuota, wantMsg: "API key quota exhausted"},
		{name: "zero quota refuses a free request", setup: billSetup{balance: 1000, quota: ptr(int64(0))}, amount: 0,
			wantKind: RefuseKeyQuota},
		{name: "subscription group without subscription", setup: billSetup{mode: BillingSubscription}, amount: 1,
			wantKind: RefuseNoSubscription, wantMsg: "No active subscription found for this group"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := seedBill(t, st, tt.setup)
			res, refusal := f.reserve(t, "req-"+tt.name, tt.amount, billNow, time.UTC)
			s := f.sums(t)
			if tt.wantKind != "" {
				if refusal == nil || refusal.Kind != tt.wantKind || (tt.wantMsg != "" && refusal.Message != tt.wantMsg) {
					t.Fatalf("refusal = %+v, want %s %q", refusal, tt.wantKind, tt.wantMsg)
				}
				if s.reservations != 0 || s.userReserved != 0 || s.quotaReserved != 0 {
					t.Errorf("a refusal held money: %+v", s)
				}
				return
			}
			if refusal != nil {
				t.Fatalf("refused: %+v", refusal)
			}
			if res.AmountMicros != tt.wantAmount || res.KeyQuota != tt.wantQuota || res.BillingMode != BillingBalance ||
				res.SubscriptionID != nil || res.Existing || res.CreatedAt.IsZero() {
				t.Errorf("reservation = %+v, want amount %d, key quota %v", res, tt.wantAmount, tt.wantQuota)
			}
			wantKeyReserved := int64(0)
			if tt.wantQuota {
				wantKeyReserved = tt.wantAmount
			}
			if s.reservations != 1 || s.userReserved != tt.wantAmount || s.quotaReserved != wantKeyReserved {
				t.Errorf("sums = %+v, want 1 reservation holding %d (key %d)", s, tt.wantAmount, wantKeyReserved)
			}
		})
	}
}

func TestReserveCountsReservedAndIsIdempotent(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	f := seedBill(t, st, billSetup{balance: 1000, quota: ptr(int64(2000))})
	first, refusal := f.reserve(t, "r1", 600, billNow, time.UTC)
	if refusal != nil || first.Existing {
		t.Fatalf("first Reserve = %+v, %+v", first, refusal)
	}
	// A re-admission of the same request gets its reservation back, nothing held twice,
	// even though a new check would now fail.
	again, refusal := f.reserve(t, "r1", 600, billNow, time.UTC)
	if refusal != nil || !again.Existing || again.AmountMicros != 600 || !again.CreatedAt.Equal(first.CreatedAt) {
		t.Fatalf("second Reserve = %+v, %+v; want the existing reservation", again, refusal)
	}
	if s := f.sums(t); s.userReserved != 600 || s.quotaReserved != 600 || s.reservations != 1 {
		t.Fatalf("sums after the repeat = %+v", s)
	}
	// 1000 - 600 leaves 400: another request for 401 is refused, 400 fits.
	if _, refusal := f.reserve(t, "r2", 401, billNow, time.UTC); refusal == nil || refusal.Kind != RefuseInsufficientBalance {
		t.Errorf("r2 for 401 = %+v, want insufficient balance", refusal)
	}
	if _, refusal := f.reserve(t, "r3", 400, billNow, time.UTC); refusal != nil {
		t.Errorf("r3 for 400 refused: %+v", refusal)
	}
	// The same request id from another key is a caller bug, not a silent success.
	_, _, err := st.reserve(context.Background(), ReserveInput{RequestID: "r1", UserID: f.user, APIKeyID: f.key + 1000,
		GroupID: f.group, AmountMicros: 1}, billNow, time.UTC)
	if !errors.Is(err, ErrReservationMismatch) {
		t.Errorf("Reserve with another key's request id: %v, want ErrReservationMismatch", err)
	}
	got, ok, err := st.GetReservation(context.Background(), "r3")
	if err != nil || !ok || got.AmountMicros != 400 || got.UserID != f.user {
		t.Errorf("GetReservation(r3) = %+v, %v, %v", got, ok, err)
	}
	var nf *NotFoundError
	if _, _, err := st.reserve(context.Background(), ReserveInput{RequestID: "x", UserID: 987654, APIKeyID: f.key,
		GroupID: f.group}, billNow, time.UTC); !errors.As(err, &nf) {
		t.Errorf("Reserve for an unknown user: %v, want NotFoundError", err)
	}
}

func TestSettleBalance(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	tests := []struct {
		name        string
		setup       billSetup
		reserve     int64 // -1 = no reservation
		cost        int64
		wantBalance int64
		wantQuota   int64
		wantHeld    int64
	}{
		{name: "cost below the reservation", setup: billSetup{balance: 10_000}, reserve: 3000, cost: 1234,
			wantBalance: 10_000 - 1234, wantQuota: 0, wantHeld: 3000},
		{name: "cost above the reservation (overrun)", setup: billSetup{balance: 1000, quota: ptr(int64(5000))}, reserve: 1000, cost: 1500,
			wantBalance: -500, wantQuota: 1500, wantHeld: 1000},
		{name: "failed request settles at 0", setup: billSetup{balance: 1000, quota: ptr(int64(5000))}, reserve: 800, cost: 0,
			wantBalance: 1000, wantQuota: 0, wantHeld: 800},
		{name: "with key quota", setup: billSetup{balance: 1000, quota: ptr(int64(5000))}, reserve: 800, cost: 700,
			wantBalance: 300, wantQuota: 700, wantHeld: 800},
		{name: "no reservation (swept) still charges", setup: billSetup{balance: 1000, quota: ptr(int64(5000))}, reserve: -1, cost: 250,
			wantBalance: 750, wantQuota: 250},
		{name: "key without quota: quota_used stays", setup: billSetup{balance: 1000}, reserve: -1, cost: 250,
			wantBalance: 750, wantQuota: 0},
		{name: "negative cost counts as 0", setup: billSetup{balance: 1000}, reserve: 100, cost: -7,
			wantBalance: 1000, wantHeld: 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := seedBill(t, st, tt.setup)
			req := "req-" + tt.name
			if tt.reserve >= 0 {
				if _, refusal := f.reserve(t, req, tt.reserve, billNow, time.UTC); refusal != nil {
					t.Fatalf("refused: %+v", refusal)
				}
			}
			res := f.settle(t, req, tt.cost, billNow, time.UTC)
			if res.BillingMode != BillingBalance || res.SubscriptionID != nil || res.ReservedMicros != tt.wantHeld {
				t.Errorf("SettleResult = %+v, want balance mode, held %d", res, tt.wantHeld)
			}
			s := f.sums(t)
			if s.balance != tt.wantBalance || s.quotaUsed != tt.wantQuota || s.userReserved != 0 || s.quotaReserved != 0 ||
				s.reservations != 0 {
				t.Errorf("after settling: %+v, want balance %d, quota used %d, nothing reserved", s, tt.wantBalance, tt.wantQuota)
			}
		})
	}
}

func TestSettleToleratesUnknownRows(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	err := st.WithTx(context.Background(), func(tx pgx.Tx) error {
		res, err := SettleInTx(context.Background(), tx, Settlement{RequestID: "ghost", UserID: 91, APIKeyID: 92,
			GroupID: 93, CostMicros: 500})
		if err == nil && (res.BillingMode != BillingBalance || res.SubscriptionID != nil || res.ReservedMicros != 0) {
			t.Errorf("SettleResult = %+v, want balance mode and nothing held", res)
		}
		return err
	})
	if err != nil {
		t.Fatalf("settling for rows that do not exist: %v", err)
	}
}

func TestSettleUsesTheReservationsMode(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	f := seedBill(t, st, billSetup{balance: 1000})
	if _, refusal := f.reserve(t, "r", 400, billNow, time.UTC); refusal != nil {
		t.Fatal(refusal)
	}
	// The operator switches the group to subscriptions while the request runs: it was
	// admitted against the balance, so it is settled there.
	billExec(t, st, `UPDATE groups SET billing_mode = 'subscription' WHERE id = $1`, f.group)
	if res := f.settle(t, "r", 300, billNow, time.UTC); res.BillingMode != BillingBalance || res.ReservedMicros != 400 {
		t.Errorf("SettleResult = %+v, want balance", res)
	}
	if s := f.sums(t); s.balance != 700 || s.userReserved != 0 {
		t.Errorf("sums = %+v", s)
	}
	// Without a reservation the group's mode now applies: no subscription, nothing charged.
	res := f.settle(t, "late", 50, billNow, time.UTC)
	if res.BillingMode != BillingSubscription || res.SubscriptionID != nil {
		t.Errorf("late SettleResult = %+v, want subscription mode without subscription", res)
	}
	if s := f.sums(t); s.balance != 700 || s.quotaUsed != 0 {
		t.Errorf("sums after the late settlement = %+v, want the balance untouched", s)
	}
}

func TestReleaseReservations(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	a := seedBill(t, st, billSetup{balance: 10_000, quota: ptr(int64(10_000))})
	b := seedBill(t, st, billSetup{mode: BillingSubscription}).withSubscription(t, time.Now().Add(-time.Hour))
	for _, r := range []struct {
		f   *billFixture
		req string
		amt int64
	}{{a, "a1", 100}, {a, "a2", 200}, {a, "a3", 400}, {b, "b1", 50}, {b, "b2", 70}} {
		if _, refusal := r.f.reserve(t, r.req, r.amt, time.Now(), time.UTC); refusal != nil {
			t.Fatalf("%s refused: %+v", r.req, refusal)
		}
	}
	// a1, a2 and b1 are stale; a3 and b2 are in flight.
	billExec(t, st, `UPDATE reservations SET created_at = now() - interval '1 hour' WHERE request_id IN ('a1', 'a2', 'b1')`)
	n, err := st.ReleaseExpiredReservations(ctx, time.Now().Add(-30*time.Minute))
	if err != nil || n != 3 {
		t.Fatalf("ReleaseExpiredReservations = %d, %v; want 3", n, err)
	}
	if s := a.sums(t); s.userReserved != 400 || s.quotaReserved != 400 || s.reservations != 1 || s.balance != 10_000 {
		t.Errorf("user a after the sweep: %+v, want a3's 400 still held", s)
	}
	if s := b.sums(t); s.subReserved != 70 || s.reservations != 1 {
		t.Errorf("user b after the sweep: %+v, want b2's 70 still held", s)
	}
	if n, err := st.ReleaseExpiredReservations(ctx, time.Now().Add(-30*time.Minute)); err != nil || n != 0 {
		t.Errorf("second sweep = %d, %v; want 0", n, err)
	}
	// A refused admission gives its reservation back at once.
	if ok, err := st.ReleaseReservation(ctx, "a3"); err != nil || !ok {
		t.Errorf("ReleaseReservation(a3) = %v, %v", ok, err)
	}
	if ok, err := st.ReleaseReservation(ctx, "a3"); err != nil || ok {
		t.Errorf("ReleaseReservation(a3) again = %v, %v; want false", ok, err)
	}
	if s := a.sums(t); s.userReserved != 0 || s.quotaReserved != 0 || s.reservations != 0 {
		t.Errorf("user a after releasing a3: %+v", s)
	}
	// A swept request's report still charges (by the group's mode), once.
	if res := a.settle(t, "a1", 90, time.Now(), time.UTC); res.ReservedMicros != 0 || res.BillingMode != BillingBalance {
		t.Errorf("settling a swept request: %+v", res)
	}
	if s := a.sums(t); s.balance != 10_000-90 || s.userReserved != 0 {
		t.Errorf("user a after the late report: %+v", s)
	}
}

// A quota set or removed while a request runs: the release follows what the reservation
// held, the charge whether the key has a quota when the request settles.
func TestSettleKeyQuotaChangedInFlight(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	tests := []struct {
		name           string
		quota          *int64
		newQuota       string // SQL value set between reserve and settle
		wantUsed       int64
		wantKeyHeldMid int64
	}{
		{"quota removed", ptr(int64(10_000)), "NULL", 0, 600},
		{"quota added", nil, "10000", 400, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := seedBill(t, st, billSetup{balance: 10_000, quota: tt.quota})
			if _, refusal := f.reserve(t, "r", 600, billNow, time.UTC); refusal != nil {
				t.Fatal(refusal)
			}
			if s := f.sums(t); s.quotaReserved != tt.wantKeyHeldMid {
				t.Fatalf("key holds %d, want %d", s.quotaReserved, tt.wantKeyHeldMid)
			}
			billExec(t, st, `UPDATE api_keys SET quota_micros = `+tt.newQuota+` WHERE id = $1`, f.key)
			f.settle(t, "r", 400, billNow, time.UTC)
			if s := f.sums(t); s.quotaUsed != tt.wantUsed || s.quotaReserved != 0 || s.balance != 9600 {
				t.Errorf("after settling: %+v, want quota used %d and nothing held", s, tt.wantUsed)
			}
		})
	}
}
