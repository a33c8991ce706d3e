package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestRandomKeysCostFewQueries: 10 000 requests through Traefik with random keys of the
// gateway's own format (so they pass the plugin's format check and reach controlsvc) cost
// at most a few hundred PostgreSQL transactions, counted by the database itself, and a good
// key keeps being served meanwhile. Without the key cache every one of them would cost a
// query.
func TestRandomKeysCostFewQueries(t *testing.T) {
	tn, _ := newTenant(t, accountSpec{Credential: unique("sk-up")})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, gw.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// Transactions of every session of the database, our own counting one excluded by
	// reading the counter the same way before and after.
	transactions := func() int64 {
		// Reports settle within a second of their request, well inside pgStatFlush.
		return pgStat(ctx, t, conn, pgStatFlush, `SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()`)
	}
	send := func(key string) int {
		req, _ := http.NewRequest(http.MethodPost, gw.GatewayURL+"/v1/responses", strings.NewReader(`{"model":"gpt-4o-mini","input":"hi"}`))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := send(tn.Key); got != http.StatusOK {
		t.Fatalf("the good key before the flood: %d", got)
	}
	// What a good request costs by itself (its admission and its report), to tell the
	// random keys' share apart.
	const calibration = 40
	base := transactions()
	for i := 0; i < calibration; i++ {
		if got := send(tn.Key); got != http.StatusOK {
			t.Fatalf("the good key: %d", got)
		}
	}
	perGood := float64(transactions()-base) / calibration
	before := transactions()
	const total, workers = 10_000, 32
	var next, unauthorized, goodOK, goodSent atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := make([]byte, 24)
			for next.Add(1) <= total {
				_, _ = rand.Read(b)
				if send("sk-pg-"+hex.EncodeToString(b)) == http.StatusUnauthorized {
					unauthorized.Add(1)
				}
			}
		}()
	}
	stop := make(chan struct{})
	var goodWG sync.WaitGroup
	goodWG.Add(1)
	go func() { // the good key, every 500 ms while the flood lasts
		defer goodWG.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
			}
			goodSent.Add(1)
			if send(tn.Key) == http.StatusOK {
				goodOK.Add(1)
			}
		}
	}()
	wg.Wait()
	close(stop)
	goodWG.Wait()
	took := time.Since(start)
	spent := transactions() - before
	random := float64(spent) - perGood*float64(goodSent.Load())
	t.Logf("%d random keys in %v: %d × 401; %d PostgreSQL transactions, of which about %.0f for the random keys (a good request costs %.1f); the good key %d of %d × 200",
		total, took.Round(time.Millisecond), unauthorized.Load(), spent, random, perGood, goodOK.Load(), goodSent.Load())
	if unauthorized.Load() != total {
		t.Errorf("%d of %d random keys answered 401", unauthorized.Load(), total)
	}
	// The random keys may cost one batched existence probe per 100 ms however many keys
	// it covers, plus the service's background work (sweeps, cache refreshes): a few
	// hundred over the flood, not one per key.
	if limit := 15*took.Seconds() + 150; random > limit {
		t.Errorf("about %.0f PostgreSQL transactions for %d random keys in %v, want at most %.0f (10 probes a second and background work)",
			random, total, took.Round(time.Millisecond), limit)
	}
	if goodOK.Load() != goodSent.Load() {
		t.Errorf("the good key was refused during the flood: %d of %d × 200", goodOK.Load(), goodSent.Load())
	}
}
