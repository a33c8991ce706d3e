package store

import (
	"context"
	"reflect"
	"testing"
)

// A record whose request holds another holder's Redis hold is refused in the writing
// transaction: not stored, not charged; the owner's own record then settles it.
func TestWriteUsageBatchRefusesAnotherHoldersHold(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	owner, intruder := seedLedger(t, st, 1_000_000), seedLedger(t, st, 1_000_000)
	ownersHold := &HeldRef{UserID: owner.user, KeyID: owner.key, GroupID: owner.group, BillingMode: BillingBalance,
		AmountMicros: 3000}

	forged := intruder.failoverWrite("req_owned")
	forged.Held = ownersHold // the reports endpoint reads the request's hold, whoever reports it
	inserted, refused, err := st.WriteUsageBatch(ctx, []UsageWrite{forged, intruder.failoverWrite("req_plain")})
	if err != nil {
		t.Fatal(err)
	}
	want := []RefusedWrite{{RequestID: "req_owned", UserID: owner.user, APIKeyID: owner.key, GroupID: owner.group}}
	if !inserted["req_plain"] || inserted["req_owned"] || !reflect.DeepEqual(refused, want) {
		t.Fatalf("inserted %v refused %+v; want req_plain stored, %+v refused", inserted, refused, want)
	}
	if n := queryInt(t, st, `SELECT count(*) FROM usage_records WHERE request_id = 'req_owned'`); n != 0 {
		t.Fatalf("%d records of the refused write", n)
	}
	if b := queryInt(t, st, `SELECT balance_micros FROM users WHERE id = $1`, owner.user); b != 1_000_000 {
		t.Fatalf("owner's balance %d, want untouched", b)
	}
	if b := queryInt(t, st, `SELECT balance_micros FROM users WHERE id = $1`, intruder.user); b != 1_000_000-1500 {
		t.Fatalf("intruder's balance %d, want only req_plain charged", b)
	}

	// The owner's own record settles it, recording what the hold held.
	own := owner.failoverWrite("req_owned")
	own.Held = ownersHold
	if ins, err := st.WriteUsage(ctx, own); err != nil || !ins {
		t.Fatalf("owner's WriteUsage = %v, %v", ins, err)
	}
	if b := queryInt(t, st, `SELECT balance_micros FROM users WHERE id = $1`, owner.user); b != 1_000_000-1500 {
		t.Fatalf("owner's balance %d, want %d", b, 1_000_000-1500)
	}
	if r := queryInt(t, st, `SELECT reserved_micros FROM usage_records WHERE request_id = 'req_owned'`); r != 3000 {
		t.Fatalf("record's reserved %d, want 3000", r)
	}
}
