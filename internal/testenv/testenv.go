// Package testenv starts throwaway PostgreSQL and Redis servers for tests, or
// hands out isolated databases on servers named by environment variables:
//
//	POOLGATE_TEST_DATABASE_URL  an existing PostgreSQL server (superuser URL);
//	                            each PostgresURL call creates a database on it
//	POOLGATE_TEST_REDIS_URL     an existing Redis; each RedisURL call claims a
//	                            distinct numbered database and flushes it
//
// Without them, one PostgreSQL server is shared by the whole test binary and
// each RedisURL call starts its own redis-server. Use Main from TestMain so
// the shared server is stopped when the tests end.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Environment variables naming existing servers.
const (
	EnvDatabaseURL = "POOLGATE_TEST_DATABASE_URL"
	EnvRedisURL    = "POOLGATE_TEST_REDIS_URL"
)

var (
	sharedPGOnce sync.Once
	sharedPG     *Postgres
	sharedPGErr  error
	dbCounter    atomic.Int64
)

// Main runs the tests, stops the shared servers and exits with the tests'
// status: func TestMain(m *testing.M) { testenv.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	if sharedPG != nil {
		if err := sharedPG.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: stopping postgres: %v\n", err)
		}
	}
	os.Exit(code)
}

func sharedPostgres() (*Postgres, error) {
	sharedPGOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*readyTimeout)
		defer cancel()
		if u := os.Getenv(EnvDatabaseURL); u != "" {
			sharedPG, sharedPGErr = externalPostgres(ctx, u)
			return
		}
		dir, err := os.MkdirTemp("", "poolgate-pg-")
		if err != nil {
			sharedPGErr = fmt.Errorf("creating postgres dir: %w", err)
			return
		}
		sharedPG, sharedPGErr = StartPostgres(ctx, dir)
		if sharedPGErr != nil {
			os.RemoveAll(dir)
		}
	})
	return sharedPG, sharedPGErr
}

// PostgresURL returns the URL of a fresh, empty database. On an external
// server ($POOLGATE_TEST_DATABASE_URL) the database is dropped at cleanup.
func PostgresURL(t testing.TB) string {
	t.Helper()
	pg, err := sharedPostgres()
	if err != nil {
		t.Fatalf("testenv: starting PostgreSQL: %v", err)
	}
	name := dbName(t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dbURL, err := pg.CreateDatabase(ctx, name)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if pg.proc == nil {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := pg.dropDatabase(ctx, name); err != nil {
				t.Errorf("testenv: %v", err)
			}
		})
	}
	return dbURL
}

// dbName builds a unique database name that still shows which test made it
// (the end of the test name, where subtest names are).
func dbName(testName string) string {
	const keep = 32
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	s := b.String()
	if len(s) > keep {
		s = s[len(s)-keep:]
	}
	return fmt.Sprintf("t_%s_%d_%s", s, dbCounter.Add(1), randHex(4))
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}

// RedisURL returns the URL of a fresh, empty Redis: its own redis-server, or
// a claimed and flushed database of $POOLGATE_TEST_REDIS_URL. Both are
// released by t.Cleanup.
func RedisURL(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*readyTimeout)
	defer cancel()
	if u := os.Getenv(EnvRedisURL); u != "" {
		dbURL, release, err := claimRedisDB(ctx, u)
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		t.Cleanup(func() {
			if err := release(); err != nil {
				t.Errorf("testenv: %v", err)
			}
		})
		return dbURL
	}
	dir, err := os.MkdirTemp("", "poolgate-redis-")
	if err != nil {
		t.Fatalf("testenv: creating redis dir: %v", err)
	}
	r, err := StartRedis(ctx, dir)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("testenv: starting Redis: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Stop(); err != nil {
			t.Errorf("testenv: stopping redis: %v", err)
		}
	})
	return r.URL
}

// RedisClient returns a client of redisURL, closed by t.Cleanup.
func RedisClient(t testing.TB, redisURL string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatalf("testenv: parsing %s: %v", redisURL, err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}
