package gateway

import (
	"net/http"
	"testing"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"
	"github.com/poolgate/poolgate/controlsvc/internal/slots"
)

// costOf100x100 is the price of 100 input and 100 output tokens of gpt-4o at rate 1:
// 100×2.5 + 100×10 micro-dollars.
const costOf100x100 = 1250

// batchFixture is two users of one group, each holding grants on one account.
type batchFixture struct {
	users   [2]int64
	keys    [2]string
	account int64
}

func (e *env) seedBatchFixture(t *testing.T) batchFixture {
	t.Helper()
	g := e.seedGroup(t, "openai", "1")
	var f batchFixture
	for i := range f.users {
		f.users[i] = e.seedUser(t, 10, 10_000_000)
		f.keys[i] = e.seedKey(t, f.users[i], g)
	}
	f.account = e.seedAccount(t, g, accountSeed{concurrency: 20})
	return f
}

// grantReport admits one request of user i and returns its final report.
func (e *env) grantReport(t *testing.T, f batchFixture, i int, requestID string) report {
	t.Helper()
	g := e.mustGrant(t, admission.Request{RequestID: requestID, APIKey: f.keys[i], Model: "gpt-4o"})
	return reportFor(g, 200, "responses", `{"input_tokens":100,"output_tokens":100}`)
}

func (e *env) wantNoSlots(t *testing.T, f batchFixture) {
	t.Helper()
	for _, u := range f.users {
		if n := e.count(t, slots.KindUser, u); n != 0 {
			t.Fatalf("user %d holds %d slots", u, n)
		}
	}
	if n := e.count(t, slots.KindAccount, f.account); n != 0 {
		t.Fatalf("account holds %d slots", n)
	}
}

func TestReportBatches(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name string
		// batches builds the batches to send, in order, from a fresh fixture.
		batches func(t *testing.T, f batchFixture) [][]report
		// accepted per batch
		accepted []int
		// rows is the number of usage records stored; charges[i] the number of
		// requests charged to user i.
		rows    int64
		charges [2]int64
	}{
		{
			name: "duplicate within one batch is stored and charged once",
			batches: func(t *testing.T, f batchFixture) [][]report {
				a := e.grantReport(t, f, 0, "")
				return [][]report{{a, a, a}}
			},
			accepted: []int{3}, rows: 1, charges: [2]int64{1, 0},
		},
		{
			name: "duplicate across batches is stored and charged once",
			batches: func(t *testing.T, f batchFixture) [][]report {
				a := e.grantReport(t, f, 0, "")
				b := e.grantReport(t, f, 1, "")
				return [][]report{{a}, {b, a}, {a, b}}
			},
			accepted: []int{1, 2, 2}, rows: 2, charges: [2]int64{1, 1},
		},
		{
			name: "several users in one batch are each charged their own requests",
			batches: func(t *testing.T, f batchFixture) [][]report {
				var batch []report
				for i := 0; i < 5; i++ {
					batch = append(batch, e.grantReport(t, f, i%2, ""))
				}
				return [][]report{batch}
			},
			accepted: []int{5}, rows: 5, charges: [2]int64{3, 2},
		},
		{
			name: "invalid reports are dropped, their slots released, valid ones stored",
			batches: func(t *testing.T, f batchFixture) [][]report {
				noRequestID := e.grantReport(t, f, 0, "")
				noRequestID.RequestID = ""
				noUser := e.grantReport(t, f, 1, "")
				noUser.UserID = 0
				// Without user_id the report cannot name the user slot: free it as the
				// lease TTL would, so the check below is about the account slot.
				if err := e.slots.Release(t.Context(), slots.KindUser, f.users[1], noUser.GrantID); err != nil {
					t.Fatal(err)
				}
				return [][]report{{noRequestID, e.grantReport(t, f, 0, ""), noUser, e.grantReport(t, f, 1, "")}}
			},
			accepted: []int{2}, rows: 2, charges: [2]int64{1, 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := e.seedBatchFixture(t)
			for i, batch := range tt.batches(t, f) {
				wantAccepted(t, e.sendReports(t, batch...), tt.accepted[i])
			}
			e.wantNoSlots(t, f)
			if n := e.queryInt(t, `SELECT count(*) FROM usage_records WHERE user_id = ANY($1)`, f.users[:]); n != tt.rows {
				t.Fatalf("%d usage records, want %d", n, tt.rows)
			}
			for i, u := range f.users {
				if b, want := e.balance(t, u), 10_000_000-tt.charges[i]*costOf100x100; b != want {
					t.Fatalf("user %d balance %d, want %d", i, b, want)
				}
			}
		})
	}
}

// Slots are released before the usage write: a failed write (500, so the plugin retries)
// still frees every slot of the batch, and the retry stores and charges each record once.
func TestReportBatchReleasesSlotsEvenWhenTheWriteFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedBatchFixture(t)
	batch := []report{e.grantReport(t, f, 0, ""), e.grantReport(t, f, 1, ""), e.grantReport(t, f, 0, "")}

	e.exec(t, `ALTER TABLE usage_records RENAME TO usage_records_away`)
	res := e.sendReports(t, batch...)
	if res.status != http.StatusInternalServerError || res.reject != "" {
		t.Fatalf("write health.Failure answered %d %s, want 500", res.status, res.body)
	}
	e.wantNoSlots(t, f)
	for i, u := range f.users {
		if b := e.balance(t, u); b != 10_000_000 {
			t.Fatalf("user %d balance %d after a failed write, want unchanged", i, b)
		}
	}

	e.exec(t, `ALTER TABLE usage_records_away RENAME TO usage_records`)
	wantAccepted(t, e.sendReports(t, batch...), 3)
	wantAccepted(t, e.sendReports(t, batch...), 3)
	if n := e.queryInt(t, `SELECT count(*) FROM usage_records`); n != 3 {
		t.Fatalf("%d usage records, want 3", n)
	}
	if b, want := e.balance(t, f.users[0]), int64(10_000_000-2*costOf100x100); b != want {
		t.Fatalf("user 0 balance %d, want %d", b, want)
	}
	if b, want := e.balance(t, f.users[1]), int64(10_000_000-costOf100x100); b != want {
		t.Fatalf("user 1 balance %d, want %d", b, want)
	}
}
