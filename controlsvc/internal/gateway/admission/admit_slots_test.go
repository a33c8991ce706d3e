package admission

import (
	"net/http"
	"testing"

	"github.com/poolgate/poolgate/controlsvc/internal/slots"
)

// A refused admission leaves no slot behind, whichever slot refused it and however many
// candidate accounts there were (one candidate: user and account slots are taken in one
// pipeline, so the account slot must be undone when the user is full).
func TestRefusedAdmissionLeavesNoSlot(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name       string
		accounts   int // candidate accounts, each of concurrency accountCap
		accountCap int
		userCap    int
		wantReason string
	}{
		{name: "user full, one candidate", accounts: 1, accountCap: 5, userCap: 1, wantReason: ReasonUserConcurrency},
		{name: "user full, two candidates", accounts: 2, accountCap: 5, userCap: 1, wantReason: ReasonUserConcurrency},
		{name: "account full, one candidate", accounts: 1, accountCap: 1, userCap: 5, wantReason: ReasonAccountConcurrency},
		{name: "accounts full, two candidates", accounts: 2, accountCap: 1, userCap: 5, wantReason: ReasonAccountConcurrency},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := e.seedFixture(t, tt.userCap, "openai")
			var accs []int64
			for i := 0; i < tt.accounts; i++ {
				accs = append(accs, e.seedAccount(t, f.group, accountSeed{concurrency: tt.accountCap}))
			}
			// Fill what is to be full with real grants.
			held := 0
			for {
				res := e.admit(t, Request{APIKey: f.key, Model: "gpt-4o"})
				if res.status != http.StatusOK {
					if res.reject != tt.wantReason {
						t.Fatalf("refused with %q (%s), want %q", res.reject, res.body, tt.wantReason)
					}
					break
				}
				held++
				if held > 20 {
					t.Fatal("never refused")
				}
			}
			if n := e.count(t, slots.KindUser, f.user); n != int64(held) {
				t.Fatalf("user holds %d slots after %d grants", n, held)
			}
			var total int64
			for _, a := range accs {
				total += e.count(t, slots.KindAccount, a)
			}
			if total != int64(held) {
				t.Fatalf("accounts hold %d slots after %d grants", total, held)
			}
		})
	}
}
