package routing

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/poolgate/poolgate/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// Entries added from many goroutines all land, each in its request's list in admission
// order once read, and Flush returns only when the entries added before it are readable.
func TestWriterBatchesAndFlushes(t *testing.T) {
	t.Parallel()
	rdb := testenv.RedisClient(t, testenv.RedisURL(t))
	l := NewLog(rdb)
	w := l.NewWriter(nil)
	t.Cleanup(w.Close)
	ctx := context.Background()
	prefix := fmt.Sprintf("req_writer_%d_", time.Now().UnixNano())
	const requests, perRequest = 50, 3
	var wg sync.WaitGroup
	base := time.Now()
	for i := 0; i < requests; i++ {
		i := i
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < perRequest; k++ {
				w.Add(ctx, fmt.Sprintf("%s%d", prefix, i), Entry{Kind: KindFirst, AccountID: int64(k + 1),
					At: base.Add(time.Duration(k) * time.Millisecond)})
			}
		}()
	}
	wg.Wait()
	w.Flush(ctx)
	ids := make([]string, requests)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	got, err := l.ReadMany(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		es := got[id]
		if len(es) != perRequest {
			t.Fatalf("%s has %d entries right after Flush, want %d", id, len(es), perRequest)
		}
		for k, e := range es {
			if e.AccountID != int64(k+1) {
				t.Fatalf("%s entry %d is account %d, want %d (admission order)", id, k, e.AccountID, k+1)
			}
		}
		if ttl := rdb.TTL(ctx, Key(id)).Val(); ttl <= 0 || ttl > TTL {
			t.Fatalf("%s expires in %v, want (0, %v]", id, ttl, TTL)
		}
	}
}

// Close writes what is pending; an Add after Close still writes its entry.
func TestWriterCloseWritesPending(t *testing.T) {
	t.Parallel()
	rdb := testenv.RedisClient(t, testenv.RedisURL(t))
	l := NewLog(rdb)
	w := l.NewWriter(nil)
	ctx := context.Background()
	id := fmt.Sprintf("req_writer_close_%d", time.Now().UnixNano())
	for k := 0; k < 10; k++ {
		w.Add(ctx, id, Entry{Kind: KindFirst, AccountID: int64(k + 1), At: time.Now()})
	}
	w.Close()
	w.Add(ctx, id, Entry{Kind: KindFailover, AccountID: 99, At: time.Now()})
	es, err := l.Read(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 11 {
		t.Fatalf("%d entries after Close and a late Add, want 11", len(es))
	}
}

// Flush gives up when its context ends, even if Redis never answers.
func TestWriterFlushHonoursItsContext(t *testing.T) {
	t.Parallel()
	rdb := testenv.RedisClient(t, "redis://127.0.0.1:1/0") // nothing listens there
	w := NewLog(rdb).NewWriter(nil)
	t.Cleanup(w.Close)
	w.Add(context.Background(), "req_unreachable", Entry{Kind: KindFirst, At: time.Now()})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	began := time.Now()
	w.Flush(ctx)
	if took := time.Since(began); took > 3*time.Second {
		t.Fatalf("Flush took %v with a 200ms context", took)
	}
}
