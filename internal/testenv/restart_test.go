package testenv

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

func TestPostgresRestartKeepsPortAndData(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		mode ShutdownMode
	}{
		{"fast", ShutdownFast},
		{"immediate", ShutdownImmediate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			pg, err := StartPostgres(ctx, filepath.Join(t.TempDir(), "pg"))
			if err != nil {
				t.Fatalf("StartPostgres: %v", err)
			}
			defer pg.Stop()
			dbURL, err := pg.CreateDatabase(ctx, "kept")
			if err != nil {
				t.Fatalf("CreateDatabase: %v", err)
			}
			conn, err := pgx.Connect(ctx, dbURL)
			if err != nil {
				t.Fatal(err)
			}
			_, err = conn.Exec(ctx, "CREATE TABLE t AS SELECT 'here'::text AS v")
			conn.Close(ctx)
			if err != nil {
				t.Fatalf("creating a table: %v", err)
			}
			// With synchronous_commit off a commit is on disk only once the WAL writer ran
			// (wal_writer_delay, 200 ms): an immediate shutdown loses commits younger than that.
			time.Sleep(time.Second)
			host := mustHost(t, pg.URL)
			if err := pg.Shutdown(tt.mode); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			if c, err := net.DialTimeout("tcp", host, time.Second); err == nil {
				c.Close()
				t.Fatalf("server at %s still accepts connections after Shutdown", host)
			}
			if err := pg.Restart(ctx); err != nil {
				t.Fatalf("Restart: %v", err)
			}
			if got := mustHost(t, pg.URL); got != host {
				t.Errorf("restarted on %s, want the old address %s", got, host)
			}
			if got := queryOne(t, dbURL, "SELECT v FROM t"); got != "here" {
				t.Errorf("after the restart the table holds %q, want here", got)
			}
			if err := pg.Restart(ctx); err == nil {
				t.Errorf("Restart of a running server succeeded, want an error")
			}
		})
	}
}

func TestRedisKillAndRestartLosesData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, err := StartRedis(ctx, filepath.Join(t.TempDir(), "redis"))
	if err != nil {
		t.Fatalf("StartRedis: %v", err)
	}
	defer r.Stop()
	opts, err := redis.ParseURL(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opts)
	defer client.Close()
	if err := client.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	host := mustHost(t, r.URL)
	if err := r.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if err := client.Get(ctx, "k").Err(); err == nil {
		t.Fatalf("GET answered while the server was killed")
	}
	if err := r.Restart(ctx); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if got := mustHost(t, r.URL); got != host {
		t.Errorf("restarted on %s, want the old address %s", got, host)
	}
	// The same client reconnects to the new server, which holds nothing.
	if err := client.Get(ctx, "k").Err(); err != redis.Nil {
		t.Errorf("GET k after the restart: %v, want redis.Nil (no data kept)", err)
	}
}
