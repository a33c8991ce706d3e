package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultReservationTTL is how long a reservation lives without its report: above the
// longest a report can take (docs/design.md, "Timeouts": a client that never reads holds its
// request until Traefik's 35-minute writeTimeout ends the blocked write), so only
// reservations of requests whose report will never come (a crashed gateway) are released
// by the sweeper (POOLGATE_RESERVATION_TTL).
const DefaultReservationTTL = 40 * time.Minute

const (
	sqlExpiredReservationUsers = `
SELECT DISTINCT user_id FROM reservations WHERE created_at < $1 ORDER BY user_id LIMIT $2`

	sqlReservationUser = `SELECT user_id FROM reservations WHERE request_id = $1`

	// $2 = '' releases the user's reservations created before $3; else the one request.
	sqlDeleteUserReservations = `
DELETE FROM reservations
WHERE user_id = $1 AND (($2 = '' AND created_at < $3) OR request_id = $2)
RETURNING billing_mode, subscription_id, api_key_id, key_quota, amount_micros`

	sqlReleaseUser         = `UPDATE users SET reserved_micros = GREATEST(reserved_micros - $2, 0) WHERE id = $1`
	sqlReleaseSubscription = `UPDATE subscriptions SET reserved_micros = GREATEST(reserved_micros - $2, 0) WHERE id = $1`
	sqlReleaseKey          = `UPDATE api_keys SET quota_reserved_micros = GREATEST(quota_reserved_micros - $2, 0) WHERE id = $1`
)

// sweepUsersPerRound bounds one round of the sweeper; it loops until nothing is left.
const sweepUsersPerRound = 500

// ReleaseExpiredReservations releases every reservation created before olderThan, one
// transaction per user (the user row locked first, like Reserve and SettleInTx), and
// returns how many it released. Safe to run in every controlsvc at once: a reservation is
// released by whoever deletes it.
func (s *Store) ReleaseExpiredReservations(ctx context.Context, olderThan time.Time) (int, error) {
	total := 0
	for {
		rows, err := s.Pool.Query(ctx, sqlExpiredReservationUsers, olderThan, sweepUsersPerRound)
		if err != nil {
			return total, fmt.Errorf("finding expired reservations: %w", err)
		}
		users, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return total, fmt.Errorf("finding expired reservations: %w", err)
		}
		for _, u := range users {
			n, err := s.releaseUserReservations(ctx, u, "", olderThan)
			if err != nil {
				return total, err
			}
			total += n
		}
		if len(users) < sweepUsersPerRound {
			return total, nil
		}
	}
}

// ReleaseReservation releases the reservation of one request without charging anything,
// for an admission that reserved but was then refused. released is false when the request
// holds no reservation.
func (s *Store) ReleaseReservation(ctx context.Context, requestID string) (released bool, err error) {
	var user int64
	ok, err := rowFound(s.Pool.QueryRow(ctx, sqlReservationUser, requestID).Scan(&user))
	if err != nil {
		return false, fmt.Errorf("releasing reservation of request %s: %w", requestID, err)
	}
	if !ok {
		return false, nil
	}
	n, err := s.releaseUserReservations(ctx, user, requestID, time.Time{})
	return n > 0, err
}

// releasedSums sums what the deleted reservations held, per holder.
type releasedSums struct {
	user int64
	subs map[int64]int64
	keys map[int64]int64
}

// releaseUserReservations deletes reservations of one user (one request, or all created
// before olderThan) and subtracts their amounts from the reserved sums.
func (s *Store) releaseUserReservations(ctx context.Context, userID int64, requestID string, olderThan time.Time) (int, error) {
	n := 0
	err := s.WithTx(ctx, func(tx pgx.Tx) error {
		n = 0
		var id int64
		if _, err := rowFound(tx.QueryRow(ctx, sqlSettleLockUser, userID).Scan(&id)); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, sqlDeleteUserReservations, userID, requestID, olderThan)
		if err != nil {
			return err
		}
		rel := releasedSums{subs: map[int64]int64{}, keys: map[int64]int64{}}
		var (
			mode        string
			sub         *int64
			key, amount int64
			keyQuota    bool
		)
		_, err = pgx.ForEachRow(rows, []any{&mode, &sub, &key, &keyQuota, &amount}, func() error {
			n++
			if sub != nil {
				rel.subs[*sub] += amount
			} else {
				rel.user += amount
			}
			if keyQuota {
				rel.keys[key] += amount
			}
			return nil
		})
		if err != nil {
			return err
		}
		return releaseSums(ctx, tx, userID, rel)
	})
	if err != nil {
		return 0, fmt.Errorf("releasing reservations of user %d: %w", userID, err)
	}
	return n, nil
}

// releaseSums subtracts rel in one round trip: user, subscriptions, keys, ids ascending.
func releaseSums(ctx context.Context, tx pgx.Tx, userID int64, rel releasedSums) error {
	b := &pgx.Batch{}
	if rel.user != 0 {
		b.Queue(sqlReleaseUser, userID, rel.user)
	}
	for _, id := range sortedIDs(rel.subs) {
		b.Queue(sqlReleaseSubscription, id, rel.subs[id])
	}
	for _, id := range sortedIDs(rel.keys) {
		b.Queue(sqlReleaseKey, id, rel.keys[id])
	}
	if b.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, b).Close()
}

func sortedIDs(m map[int64]int64) []int64 {
	out := make([]int64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
