package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// batchSender sends a batch inside a transaction: a pgx.Tx, or the connection of a
// pipelinedTx.
type batchSender interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// pipelinedTx is a transaction whose BEGIN goes out with its first statement and whose
// COMMIT goes out with the statements queued on last: two round trips fewer than a
// pgx.Tx, which sends each on its own. A report batch of one record (a gateway at low
// concurrency) took five round trips: BEGIN, the insert, the settlement reads, the
// charges, COMMIT; it takes three.
type pipelinedTx struct {
	conn  batchSender
	begun bool
	last  *pgx.Batch // queued by fn, sent before the COMMIT in the same round trip
}

// queryRowFirst runs the transaction's first statement, which must return one row, with
// the BEGIN in front of it, and scans the row into dest.
func (t *pipelinedTx) queryRowFirst(ctx context.Context, sql string, args []any, dest ...any) error {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(sql, args...)
	br := t.conn.SendBatch(ctx, b)
	_, err := br.Exec()
	if err == nil {
		t.begun = true
		err = br.QueryRow().Scan(dest...)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

// withPipelinedTx runs fn in one transaction on a connection of the pool, committed with
// the statements fn queued on tx.last when fn returns nil, rolled back otherwise. fn must
// start with queryRowFirst. A connection left in a transaction by a failed ROLLBACK is
// closed, never handed back to the pool.
func (s *Store) withPipelinedTx(ctx context.Context, fn func(tx *pipelinedTx) error) error {
	conn, err := s.Pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquiring a connection: %w", err)
	}
	defer conn.Release()
	tx := &pipelinedTx{conn: conn, last: &pgx.Batch{}}
	err = fn(tx)
	if err == nil && !tx.begun {
		err = errors.New("pipelined transaction: fn sent no first statement")
	}
	if err == nil {
		tx.last.Queue("COMMIT")
		if err = conn.SendBatch(ctx, tx.last).Close(); err != nil {
			err = fmt.Errorf("recording settlements and account costs, committing: %w", err)
		}
	}
	if err != nil {
		if conn.Conn().PgConn().TxStatus() != 'I' {
			if _, rerr := conn.Exec(ctx, "ROLLBACK"); rerr != nil {
				_ = conn.Conn().Close(ctx)
			}
		}
		return err
	}
	return nil
}
