package testenv

import (
	"context"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

func queryOne(t *testing.T, dbURL, sql string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect %s: %v", dbURL, err)
	}
	defer conn.Close(ctx)
	var s string
	if err := conn.QueryRow(ctx, sql).Scan(&s); err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	return s
}

func TestPostgresURLGivesFreshDatabases(t *testing.T) {
	t.Parallel()
	a := PostgresURL(t)
	b := PostgresURL(t)
	if a == b {
		t.Fatalf("two calls returned the same URL %s", a)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE t (id int); INSERT INTO t VALUES (42)"); err != nil {
		t.Fatalf("create table: %v", err)
	}
	if got := queryOne(t, a, "SELECT id::text FROM t"); got != "42" {
		t.Errorf("select from a = %q, want 42", got)
	}
	if got := queryOne(t, b, "SELECT count(*)::text FROM pg_tables WHERE schemaname = 'public'"); got != "0" {
		t.Errorf("database b has %s public tables, want 0 (not isolated)", got)
	}
	u, err := url.Parse(a)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u.Host, "127.0.0.1:") {
		t.Errorf("host = %q, want 127.0.0.1:<port>", u.Host)
	}
}

func TestPostgresURLParallelCallers(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"one", "two", "three", "four"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dbURL := PostgresURL(t)
			if got := queryOne(t, dbURL, "SELECT current_database()"); !strings.Contains(got, name) {
				t.Errorf("current_database() = %q, want it to name the test %q", got, name)
			}
		})
	}
}

func TestStartPostgresStopRemovesEverything(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "pg")
	ctx := context.Background()
	pg, err := StartPostgres(ctx, dir)
	if err != nil {
		t.Fatalf("StartPostgres: %v", err)
	}
	dbURL, err := pg.CreateDatabase(ctx, "explicit_db")
	if err != nil {
		pg.Stop()
		t.Fatalf("CreateDatabase: %v", err)
	}
	if got := queryOne(t, dbURL, "SELECT current_database()"); got != "explicit_db" {
		t.Errorf("current_database() = %q, want explicit_db", got)
	}
	if got := queryOne(t, dbURL, "SHOW fsync"); got != "off" {
		t.Errorf("fsync = %q, want off", got)
	}
	if _, err := pg.CreateDatabase(ctx, "explicit_db"); err == nil {
		t.Errorf("creating the same database twice succeeded, want an error")
	}
	host := mustHost(t, pg.URL)
	if err := pg.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("dir %s still exists after Stop (stat err %v)", dir, err)
	}
	if c, err := net.DialTimeout("tcp", host, time.Second); err == nil {
		c.Close()
		t.Errorf("server at %s still accepts connections after Stop", host)
	}
	if err := pg.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestCreateDatabaseRejectsBadNames(t *testing.T) {
	t.Parallel()
	pg := &Postgres{URL: "postgres://postgres@127.0.0.1:1/postgres"}
	tests := []struct {
		name string
		give string
	}{
		{name: "empty", give: ""},
		{name: "upper case", give: "Foo"},
		{name: "quote injection", give: `x"; DROP DATABASE postgres; --`},
		{name: "leading digit", give: "1db"},
		{name: "too long", give: strings.Repeat("a", 64)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := pg.CreateDatabase(context.Background(), tt.give)
			if err == nil || !strings.Contains(err.Error(), "invalid database name") {
				t.Errorf("CreateDatabase(%q) err = %v, want invalid database name", tt.give, err)
			}
		})
	}
}

func TestDBNameIsValidAndUnique(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		give string
	}{
		{name: "plain", give: "TestFoo"},
		{name: "subtest", give: "TestFoo/with spaces & symbols"},
		{name: "long", give: strings.Repeat("TestVeryLongName", 10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, b := dbName(tt.give), dbName(tt.give)
			if a == b {
				t.Errorf("dbName(%q) twice = %q, want distinct", tt.give, a)
			}
			for _, n := range []string{a, b} {
				if !dbNameRE.MatchString(n) {
					t.Errorf("dbName(%q) = %q, not a valid database name", tt.give, n)
				}
			}
		})
	}
}

func TestRedisURLGivesIsolatedServers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := RedisClient(t, RedisURL(t))
	b := RedisClient(t, RedisURL(t))
	if got, err := a.Ping(ctx).Result(); err != nil || got != "PONG" {
		t.Fatalf("PING = %q, %v; want PONG", got, err)
	}
	if err := a.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if got, err := a.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Errorf("GET on a = %q, %v; want v", got, err)
	}
	if n, err := b.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Errorf("DBSIZE on b = %d, %v; want 0 (not isolated)", n, err)
	}
	if got, err := a.ConfigGet(ctx, "save").Result(); err != nil || got["save"] != "" {
		t.Errorf("CONFIG GET save = %v, %v; want empty (persistence off)", got, err)
	}
}

func TestStartRedisStopRemovesEverything(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "redis")
	r, err := StartRedis(context.Background(), dir)
	if err != nil {
		t.Fatalf("StartRedis: %v", err)
	}
	host := mustHost(t, r.URL)
	if err := r.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("dir %s still exists after Stop (stat err %v)", dir, err)
	}
	if c, err := net.DialTimeout("tcp", host, time.Second); err == nil {
		c.Close()
		t.Errorf("server at %s still accepts connections after Stop", host)
	}
}

func TestStartRedisWithoutBinaryNamesTheFix(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := StartRedis(context.Background(), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "scripts/ensure-deps.sh") {
		t.Fatalf("err = %v, want a message pointing at scripts/ensure-deps.sh", err)
	}
}

func TestClaimRedisDBOnExternalServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	server := RedisURL(t)
	admin := RedisClient(t, server)

	urlA, releaseA, err := claimRedisDB(ctx, server)
	if err != nil {
		t.Fatalf("claim a: %v", err)
	}
	urlB, releaseB, err := claimRedisDB(ctx, server)
	if err != nil {
		t.Fatalf("claim b: %v", err)
	}
	if urlA == urlB {
		t.Fatalf("two claims returned the same database %s", urlA)
	}
	a := RedisClient(t, urlA)
	if err := a.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if n, err := RedisClient(t, urlB).DBSize(ctx).Result(); err != nil || n != 0 {
		t.Errorf("DBSIZE on b = %d, %v; want 0", n, err)
	}
	dbA := strings.TrimPrefix(mustURL(t, urlA).Path, "/")
	if err := releaseA(); err != nil {
		t.Fatalf("release a: %v", err)
	}
	if n, err := a.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Errorf("DBSIZE on a after release = %d, %v; want 0 (flushed)", n, err)
	}
	if n, err := admin.Exists(ctx, "poolgate:testenv:claim:"+dbA).Result(); err != nil || n != 0 {
		t.Errorf("claim on db %s still present after release (%d, %v)", dbA, n, err)
	}
	if err := releaseB(); err != nil {
		t.Fatalf("release b: %v", err)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatalf("parse %s: %v", s, err)
	}
	return u
}

func mustHost(t *testing.T, s string) string {
	t.Helper()
	return mustURL(t, s).Host
}
