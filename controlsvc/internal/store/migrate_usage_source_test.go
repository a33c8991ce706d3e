package store

import (
	"context"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
)

// migrationsBefore is the embedded migrations older than version.
func migrationsBefore(t *testing.T, version string) fstest.MapFS {
	t.Helper()
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	out := fstest.MapFS{}
	for _, p := range names {
		if strings.TrimPrefix(p, "migrations/") >= version {
			continue
		}
		body, err := fs.ReadFile(migrationFiles, p)
		if err != nil {
			t.Fatal(err)
		}
		out[p] = &fstest.MapFile{Data: body}
	}
	return out
}

// 0009 applies to a database holding records of the old schema: they read as billed from
// the upstream's usage, the writer and the readers work on them, and no other source is
// accepted.
func TestMigrationUsageSourceOnExistingData(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	ctx := context.Background()
	if err := st.migrate(ctx, migrationsBefore(t, "0009_")); err != nil {
		t.Fatalf("migrating to 0008: %v", err)
	}
	f := seedLedger(t, st, 1_000_000)
	admExec(t, st, `INSERT INTO usage_records (request_id, user_id, api_key_id, group_id, model, status, attempts)
		VALUES ('req_old', $1, $2, $3, 'gpt-4o', 200, 1)`, f.user, f.key, f.group)
	admExec(t, st, `INSERT INTO usage_attempts (request_id, attempt, status) VALUES ('req_old', 1, 200)`)

	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("Migrate over existing data: %v", err)
	}
	old, err := st.GetUsage(ctx, "req_old")
	if err != nil || old.UsageSource != UsageUpstream {
		t.Fatalf("old record: usage_source %q, %v; want %q", old.UsageSource, err, UsageUpstream)
	}
	attempts, err := st.UsageAttempts(ctx, "req_old")
	if err != nil || len(attempts) != 1 || attempts[0].UsageSource != UsageUpstream {
		t.Fatalf("old attempts %+v, %v; want one from the upstream", attempts, err)
	}

	u := f.failoverWrite("req_new")
	u.UsageSource, u.Attempts[1].UsageSource = UsageEstimate, UsageEstimate
	if ins, err := st.WriteUsage(ctx, u); err != nil || !ins {
		t.Fatalf("WriteUsage = %v, %v", ins, err)
	}
	rec, err := st.GetUsage(ctx, "req_new")
	if err != nil || rec.UsageSource != UsageEstimate {
		t.Fatalf("new record: usage_source %q, %v; want %q", rec.UsageSource, err, UsageEstimate)
	}
	if attempts, err = st.UsageAttempts(ctx, "req_new"); err != nil || len(attempts) != 2 ||
		attempts[0].UsageSource != UsageUpstream || attempts[1].UsageSource != UsageEstimate {
		t.Fatalf("new attempts %+v, %v; want upstream then estimate", attempts, err)
	}
	for _, table := range []string{"usage_records", "usage_attempts"} {
		if _, err := st.Pool.Exec(ctx, `UPDATE `+table+` SET usage_source = 'guess' WHERE request_id = 'req_old'`); err == nil ||
			!strings.Contains(err.Error(), "check") {
			t.Errorf("%s accepted usage_source 'guess' (%v), want a check violation", table, err)
		}
	}
}
