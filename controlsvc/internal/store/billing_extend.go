package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poolgate/poolgate/controlsvc/internal/billing"
)

// sqlExtendReservation sets a reservation's amount; the reserved sums get the difference.
const sqlExtendReservation = `UPDATE reservations SET amount_micros = $2 WHERE request_id = $1`

// ExtendReservation raises the reservation of in.RequestID to in.AmountMicros (capped at the
// group's max_reserve like Reserve's) when it holds less: a re-admission that serves a
// dearer model than the first admission priced (a model fallback, docs/billing.md) must stay
// covered. The difference is checked by Reserve's rules and held where the reservation is
// held (balance or its subscription, and the key's quota when it holds one), up to what is
// available; it is refused only when less than the new model's input estimate
// (MinAmountMicros) beyond the amount held is available. A refusal changes nothing. A request that holds no reservation (settled, swept) extends nothing.
func (s *Store) ExtendReservation(ctx context.Context, in ReserveInput) (*BillingRefusal, error) {
	return s.extendReservation(ctx, in, time.Now(), billing.Location())
}

func (s *Store) extendReservation(ctx context.Context, in ReserveInput, now time.Time, loc *time.Location) (*BillingRefusal, error) {
	var refusal *BillingRefusal
	err := s.WithTx(ctx, func(tx pgx.Tx) error {
		refusal = nil // a retried transaction starts over
		rows, err := readReserveRows(ctx, tx, in, now)
		if err != nil {
			return err
		}
		ex := rows.existing
		switch {
		case ex == nil || !rows.userFound || !rows.groupFound || !rows.keyFound:
			return nil
		case ex.UserID != in.UserID || ex.APIKeyID != in.APIKeyID || ex.GroupID != in.GroupID:
			return ErrReservationMismatch
		}
		target := max(0, min(in.AmountMicros, rows.maxReserve))
		delta := target - ex.AmountMicros
		if delta <= 0 {
			return nil
		}
		need := max(0, min(in.MinAmountMicros, target)-ex.AmountMicros)
		if delta, refusal = rows.check(need, delta, now, loc); refusal != nil || delta <= 0 {
			return nil
		}
		target = ex.AmountMicros + delta
		b := &pgx.Batch{}
		b.Queue(sqlExtendReservation, ex.RequestID, target)
		if ex.SubscriptionID != nil {
			b.Queue(sqlHoldSubscription, *ex.SubscriptionID, delta)
		} else {
			b.Queue(sqlHoldUser, ex.UserID, delta)
		}
		if ex.KeyQuota {
			b.Queue(sqlHoldKey, ex.APIKeyID, delta)
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("holding %d more micros: %w", delta, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("extending the reservation of request %s: %w", in.RequestID, err)
	}
	return refusal, nil
}
