package store

import (
	"context"
	"reflect"
	"testing"

	"github.com/jackc/pgx/v5"
)

// A record whose request holds another holder's reservation is refused in the writing
// transaction: not stored, not charged, the reservation kept. SettleInTx on its own never
// charges nor releases another holder's reservation either.
func TestWriteUsageBatchRefusesAnotherHoldersReservation(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	owner, intruder := seedLedger(t, st, 1_000_000), seedLedger(t, st, 1_000_000)
	admExec(t, st, `UPDATE users SET reserved_micros = 3000 WHERE id = $1`, owner.user)
	admExec(t, st, `INSERT INTO reservations (request_id, user_id, api_key_id, group_id, billing_mode, key_quota,
		amount_micros) VALUES ('req_owned', $1, $2, $3, 'balance', false, 3000)`, owner.user, owner.key, owner.group)

	forged := intruder.failoverWrite("req_owned")
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

	err = st.WithTx(ctx, func(tx pgx.Tx) error {
		_, err := SettleInTx(ctx, tx, Settlement{RequestID: "req_owned", UserID: intruder.user, APIKeyID: intruder.key,
			GroupID: intruder.group, CostMicros: 500})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, st, `SELECT count(*) FROM reservations WHERE request_id = 'req_owned' AND amount_micros = 3000`); n != 1 {
		t.Fatal("another holder's settlement released the reservation")
	}
	if r := queryInt(t, st, `SELECT reserved_micros FROM users WHERE id = $1`, owner.user); r != 3000 {
		t.Fatalf("owner's reserved %d, want 3000", r)
	}
	if b := queryInt(t, st, `SELECT balance_micros FROM users WHERE id = $1`, owner.user); b != 1_000_000 {
		t.Fatalf("owner's balance %d, want untouched", b)
	}

	// The owner's own record settles it.
	if ins, err := st.WriteUsage(ctx, owner.failoverWrite("req_owned")); err != nil || !ins {
		t.Fatalf("owner's WriteUsage = %v, %v", ins, err)
	}
	if n := queryInt(t, st, `SELECT count(*) FROM reservations WHERE request_id = 'req_owned'`); n != 0 {
		t.Fatal("the owner's settlement kept the reservation")
	}
	if b, r := queryInt(t, st, `SELECT balance_micros FROM users WHERE id = $1`, owner.user),
		queryInt(t, st, `SELECT reserved_micros FROM users WHERE id = $1`, owner.user); b != 1_000_000-1500 || r != 0 {
		t.Fatalf("owner's balance %d reserved %d, want %d and 0", b, r, 1_000_000-1500)
	}
}
