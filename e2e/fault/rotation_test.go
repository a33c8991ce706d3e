package fault

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/poolgate/poolgate/internal/gatewaytest"
)

// TestPluginSecretRotationLosesNothing rotates the plugin secret under load, the way
// docs/security.md describes: (1) each controlsvc instance restarts in turn accepting the
// new secret as current and the old one as previous; (2) the plugin's secret file gets the
// new secret, which the plugin reads within 10 s; (3) each instance restarts in turn with
// the new secret only. Every request in between is a complete 200 with its usage record,
// and once the old secret is retired a call carrying it is refused.
func TestPluginSecretRotationLosesNothing(t *testing.T) {
	c := newClient(t, killStack)
	tn := c.NewTenant(gatewaytest.TenantSpec{Name: "rotate", UserConcurrency: 20, BalanceMicros: initialMicros, AccountConcurrency: []int{20}})
	c.ProgramUpstream(tn.Credentials[0], streamScript())
	oldSecret := killStack.PluginSecret
	newSecret := fmt.Sprintf("rotated-%d-%s", time.Now().UnixNano(), oldSecret)

	rolling := func(ctx context.Context, env ...string) error {
		for i := 0; i < 2; i++ {
			if err := killStack.SetControlsvcEnvAt(i, env...); err != nil {
				return err
			}
			if err := killStack.StopControlsvcAt(i); err != nil {
				return err
			}
			if err := killStack.StartControlsvcAt(ctx, i); err != nil {
				return err
			}
			time.Sleep(time.Second)
		}
		return nil
	}
	var (
		mu      sync.Mutex
		retired time.Time
	)
	answers := underLoad(t, c, []loadSpec{{tn.Key, 6}}, func(ctx context.Context) error {
		time.Sleep(time.Second)
		if err := rolling(ctx, "POOLGATE_PLUGIN_SECRET="+newSecret, "POOLGATE_PLUGIN_SECRET_PREVIOUS="+oldSecret); err != nil {
			return err
		}
		if err := os.WriteFile(killStack.PluginSecretFile, []byte(newSecret+"\n"), 0o600); err != nil {
			return err
		}
		time.Sleep(12 * time.Second) // the plugin re-reads its secret file every 10 s
		if err := rolling(ctx, "POOLGATE_PLUGIN_SECRET_PREVIOUS="); err != nil {
			return err
		}
		mu.Lock()
		retired = time.Now()
		mu.Unlock()
		return nil
	}, 2*time.Second)
	// Later scenarios on this stack run with the new secret: the stack says so.
	killStack.PluginSecret = newSecret

	o := classify(answers)
	if len(o.unavailable) > 0 || len(o.others) > 0 {
		var bad []string
		for _, a := range o.unavailable {
			bad = append(bad, fmt.Sprintf("503 %.200q (sent %s)", a.body, a.sent.Format("15:04:05.000")))
		}
		t.Fatalf("%d of %d answers were not a complete 200: %v %v", len(o.unavailable)+len(o.others), len(answers),
			gatewaytest.Head(bad), gatewaytest.Head(o.others))
	}
	after := 0
	for _, a := range answers {
		if a.sent.After(retired) {
			after++
		}
	}
	t.Logf("%d complete streams, %d sent after the old secret was retired", len(o.okIDs[0]), after)
	if after == 0 {
		t.Fatal("no request was sent after the old secret was retired")
	}
	checkUserLedger(t, c, tn, o.okIDs[0], initialMicros)
	c.WaitNoSlots([]int64{tn.UserID}, tn.AccountIDs, killLeaseTTL+10*time.Second)

	for _, s := range []struct {
		secret string
		want   int
	}{{oldSecret, 401}, {newSecret, 200}} {
		status := renewWith(t, s.secret)
		if status != s.want {
			t.Errorf("a renew call with the %s secret answered %d, want %d", map[bool]string{true: "old", false: "new"}[s.secret == oldSecret], status, s.want)
		}
	}
}

// renewWith makes an empty renew call to every controlsvc instance with secret and returns
// the status they agree on (the test fails if they differ).
func renewWith(t *testing.T, secret string) int {
	t.Helper()
	status := 0
	for _, u := range killStack.ControlURLs {
		req, err := http.NewRequest(http.MethodPost, u+"/internal/v1/renew", strings.NewReader(`{"leases":[]}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Poolgate-Secret", secret)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if status != 0 && resp.StatusCode != status {
			t.Fatalf("the instances disagree: %d and %d", status, resp.StatusCode)
		}
		status = resp.StatusCode
	}
	return status
}
