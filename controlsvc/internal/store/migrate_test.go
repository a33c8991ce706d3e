package store

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/poolgate/poolgate/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// openStore opens a fresh, empty database without migrating it.
func openStore(t testing.TB) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := Open(ctx, testenv.PostgresURL(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(st.Close)
	return st
}

// newStore opens a fresh database with the real schema.
func newStore(t testing.TB) *Store {
	t.Helper()
	st := openStore(t)
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	st.SetCredentialKeys(testKeys(t, testKeyA, nil))
	return st
}

func appliedRows(t *testing.T, st *Store) []string {
	t.Helper()
	rows, err := st.Pool.Query(context.Background(), `SELECT version::text || ':' || name FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatalf("reading schema_migrations: %v", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func tableExists(t *testing.T, st *Store, name string) bool {
	t.Helper()
	var ok bool
	if err := st.Pool.QueryRow(context.Background(), `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestMigrateIdempotent(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	want, err := loadMigrations(migrationFiles)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := st.Migrate(context.Background()); err != nil {
			t.Fatalf("Migrate run %d: %v", i+1, err)
		}
	}
	got := appliedRows(t, st)
	if len(got) != len(want) || got[0] != "1:0001_init.sql" {
		t.Errorf("schema_migrations = %v, want one row per embedded file (%d), first 1:0001_init.sql", got, len(want))
	}
	for _, table := range []string{"users", "groups", "accounts", "account_groups", "api_keys", "usage_records"} {
		if !tableExists(t, st, table) {
			t.Errorf("table %s missing after Migrate", table)
		}
	}
}

func TestMigrateConcurrent(t *testing.T) {
	t.Parallel()
	url := testenv.PostgresURL(t)
	const starts = 4
	var wg sync.WaitGroup
	errs := make([]error, starts)
	for i := 0; i < starts; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			st, err := Open(context.Background(), url)
			if err != nil {
				errs[i] = err
				return
			}
			defer st.Close()
			errs[i] = st.Migrate(context.Background())
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("start %d: %v", i, err)
		}
	}
	st, err := Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	want, _ := loadMigrations(migrationFiles)
	if got := appliedRows(t, st); len(got) != len(want) {
		t.Errorf("schema_migrations = %v, want %d rows", got, len(want))
	}
}

func TestMigrateFailureRollsBack(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	ctx := context.Background()
	files := fstest.MapFS{
		"migrations/0001_one.sql": {Data: []byte(`CREATE TABLE one (id int);`)},
		// Two statements: the first must be rolled back with the failing second.
		"migrations/0002_two.sql": {Data: []byte(`CREATE TABLE two (id int); SELECT * FROM no_such_table;`)},
	}
	err := st.migrate(ctx, files)
	if err == nil || !strings.Contains(err.Error(), "0002_two.sql") {
		t.Fatalf("migrate() = %v, want an error naming 0002_two.sql", err)
	}
	if !tableExists(t, st, "one") || tableExists(t, st, "two") {
		t.Errorf("after failure: table one exists=%v (want true), two exists=%v (want false)",
			tableExists(t, st, "one"), tableExists(t, st, "two"))
	}
	if got := appliedRows(t, st); len(got) != 1 || got[0] != "1:0001_one.sql" {
		t.Errorf("schema_migrations = %v, want [1:0001_one.sql]", got)
	}

	files["migrations/0002_two.sql"] = &fstest.MapFile{Data: []byte(`CREATE TABLE two (id int);`)}
	if err := st.migrate(ctx, files); err != nil {
		t.Fatalf("migrate after fix: %v", err)
	}
	if !tableExists(t, st, "two") {
		t.Error("table two missing after the fixed migration ran")
	}
	// The advisory lock was released each time: a session-level lock is re-entrant on its
	// own connection, so check from a different one.
	var got bool
	if err := st.Pool.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, migrateLockKey).Scan(&got); err != nil || !got {
		t.Errorf("pg_try_advisory_lock = %v, %v; want the migration lock free", got, err)
	}
}

func TestLoadMigrations(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		give    fstest.MapFS
		want    []int64
		wantErr string
	}{
		{
			name: "sorted by number, not by text",
			give: fstest.MapFS{
				"migrations/10_ten.sql":   {Data: []byte("SELECT 10")},
				"migrations/0002_two.sql": {Data: []byte("SELECT 2")},
				"migrations/README.md":    {Data: []byte("ignored")},
			},
			want: []int64{2, 10},
		},
		{
			name:    "bad name",
			give:    fstest.MapFS{"migrations/init.sql": {Data: []byte("SELECT 1")}},
			wantErr: "init.sql",
		},
		{
			name: "duplicate version",
			give: fstest.MapFS{
				"migrations/0003_a.sql": {Data: []byte("SELECT 1")},
				"migrations/3_b.sql":    {Data: []byte("SELECT 1")},
			},
			wantErr: "share version 3",
		},
		{
			name:    "version zero",
			give:    fstest.MapFS{"migrations/0000_zero.sql": {Data: []byte("SELECT 1")}},
			wantErr: "positive",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := loadMigrations(tt.give)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("loadMigrations() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var versions []int64
			for _, m := range got {
				versions = append(versions, m.Version)
			}
			if len(versions) != len(tt.want) || versions[0] != tt.want[0] || versions[1] != tt.want[1] {
				t.Errorf("versions = %v, want %v", versions, tt.want)
			}
		})
	}
}
