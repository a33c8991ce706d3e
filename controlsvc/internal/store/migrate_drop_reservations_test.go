package store

import (
	"context"
	"slices"
	"testing"
)

// 0020 drops the legacy reservations and reserved sums, also on a database that is at
// 0021 already (0020 was numbered before 0021 but merged after it): migrations apply every
// version not yet recorded, so it runs then, and settlement works on the result.
func TestMigrationDropReservationsAfter0021(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	ctx := context.Background()
	without := migrationsBefore(t, "9999_")
	delete(without, "migrations/0020_drop_reservations.sql")
	if err := st.migrate(ctx, without); err != nil {
		t.Fatalf("migrating to 0021 without 0020: %v", err)
	}
	if !tableExists(t, st, "reservations") || !tableExists(t, st, "usage_request_ids") {
		t.Fatal("want the database at 0021 with the reservations table")
	}
	f := seedLedger(t, st, 1_000_000)
	admExec(t, st, `INSERT INTO reservations (request_id, user_id, api_key_id, group_id, billing_mode, key_quota,
		amount_micros) VALUES ('req_legacy', $1, $2, $3, 'balance', false, 3000)`, f.user, f.key, f.group)

	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if !slices.Contains(appliedRows(t, st), "20:0020_drop_reservations.sql") {
		t.Fatalf("applied %v, want 0020 among them", appliedRows(t, st))
	}
	if tableExists(t, st, "reservations") {
		t.Error("reservations table still there")
	}
	for _, c := range []struct{ table, column string }{
		{"users", "reserved_micros"}, {"subscriptions", "reserved_micros"}, {"api_keys", "quota_reserved_micros"},
	} {
		if n := queryInt(t, st, `SELECT count(*) FROM information_schema.columns WHERE table_name = $1 AND column_name = $2`,
			c.table, c.column); n != 0 {
			t.Errorf("%s.%s still there", c.table, c.column)
		}
	}
	// The request the legacy row held settles like any other without a hold.
	if ins, err := st.WriteUsage(ctx, f.failoverWrite("req_legacy")); err != nil || !ins {
		t.Fatalf("WriteUsage = %v, %v", ins, err)
	}
	if b := queryInt(t, st, `SELECT balance_micros FROM users WHERE id = $1`, f.user); b != 1_000_000-1500 {
		t.Errorf("balance %d, want %d", b, 1_000_000-1500)
	}
}
