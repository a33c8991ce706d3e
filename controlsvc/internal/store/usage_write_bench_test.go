package store

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/poolgate/poolgate/controlsvc/internal/billing"
)

// benchBatch is the size of a report batch in the benchmarks.
const benchBatch = 100

// BenchmarkUsageWrite compares writing a batch of benchBatch records record by record with
// writing it as one set: whole writes (insert and settle), and the insert statement alone
// (one single-record statement per record pipelined in one transaction, against one
// multi-row statement). One op is one batch.
func BenchmarkUsageWrite(b *testing.B) {
	st := newStore(b)
	ctx := context.Background()
	f := seedLedger(b, st, 1<<60)
	seq := 0
	batch := func() []UsageWrite {
		out := make([]UsageWrite, benchBatch)
		for i := range out {
			seq++
			out[i] = f.failoverWrite(fmt.Sprintf("req_bench_%d", seq))
		}
		return out
	}
	b.Run("write/per-record", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			for _, u := range batch() {
				if _, err := st.WriteUsage(ctx, u); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("write/set", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, _, err := st.WriteUsageBatch(ctx, batch()); err != nil {
				b.Fatal(err)
			}
		}
	})
	insert := func(b *testing.B, perRecord bool) {
		for i := 0; i < b.N; i++ {
			writes := batch()
			err := st.WithTx(ctx, func(tx pgx.Tx) error {
				if !perRecord {
					_, err := tx.Exec(ctx, sqlWriteUsageBatch, insertArgs(writes)...)
					return err
				}
				pb := &pgx.Batch{}
				for j := range writes {
					pb.Queue(sqlWriteUsageBatch, insertArgs(writes[j:j+1])...)
				}
				return tx.SendBatch(ctx, pb).Close()
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("insert/per-record", func(b *testing.B) { insert(b, true) })
	b.Run("insert/set", func(b *testing.B) { insert(b, false) })
}

func insertArgs(writes []UsageWrite) []any {
	cols := newUsageColumns(len(writes))
	for i := range writes {
		cols.add(&writes[i])
	}
	byID := make(map[string]*UsageWrite, len(writes))
	for i := range writes {
		byID[writes[i].RequestID] = &writes[i]
	}
	args := append(cols.args(), false, billing.Location().String())
	args = append(args, cols.reasonArgs()...)
	return append(args, heldArgs(byID)...)
}
