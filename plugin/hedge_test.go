package plugin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/poolgate/poolgate/fakeupstream"
)

const hedgeBody = `{"model":"gpt-4o","input":"hi","stream":true}`

// wantRun is one expected attempt of a hedged request's report.
type wantRun struct {
	account int64
	status  int
	class   string
	lost    bool
}

func checkRuns(t *testing.T, got []attemptReport, want []wantRun) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("attempts = %+v, want %+v", got, want)
	}
	for i, w := range want {
		g := got[i]
		if g.AccountID != w.account || g.Status != w.status || g.ErrorClass != w.class || g.HedgeLost != w.lost {
			t.Fatalf("attempt %d = %+v, want %+v", i, g, w)
		}
	}
}

func TestHedgedFirstToken(t *testing.T) {
	t.Parallel()
	slow := fakeupstream.Script{DelayMS: 3000, Text: "from the slow account"}
	tests := []struct {
		name     string
		first    fakeupstream.Script
		second   *fakeupstream.Script // nil: no second account
		wantText string
		want     []wantRun
		admits   int  // the first admission and the hedge's, if asked
		hedged   bool // the second admit call was a hedge
		fast     bool // answered well before the slow account's delay
	}{
		{"slow first account: the second answers", slow, &fakeupstream.Script{Text: "from the quick account"},
			"from the quick account", []wantRun{{1, 0, classHedgeLost, true}, {2, 200, "", false}}, 2, true, true},
		{"quick first account: no hedge", fakeupstream.Script{Text: "from the first"}, &fakeupstream.Script{Text: "unused"},
			"from the first", []wantRun{{1, 200, "", false}}, 1, false, true},
		{"no account free for the hedge: the first answers", slow, nil,
			"from the slow account", []wantRun{{1, 200, "", false}}, 2, true, false},
		{"the hedge fails: the first still answers", slow, &fakeupstream.Script{Status: 500},
			"from the slow account", []wantRun{{2, 500, classUpstreamStatus, false}, {1, 200, "", false}}, 2, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake, fakeURL := newFakeUpstream(t)
			fake.SetCredentialScript("acct-1", tt.first)
			accounts := []stubAccount{{id: 1, baseURL: fakeURL, apiKey: "acct-1", hedgeAfterMs: 200}}
			if tt.second != nil {
				fake.SetCredentialScript("acct-2", *tt.second)
				accounts = append(accounts, stubAccount{id: 2, baseURL: fakeURL, apiKey: "acct-2", hedgeAfterMs: 200})
			}
			stub := newContractStub(t, accounts...)
			began := time.Now()
			rec := do(newTestPlugin(t, stub, nil), "/v1/responses", hedgeBody, nil)
			took := time.Since(began)
			body := rec.Body.String()
			if rec.Code != 200 || !strings.Contains(body, tt.wantText) || !strings.Contains(body, "response.completed") {
				t.Fatalf("status %d: %s", rec.Code, body)
			}
			if strings.Count(body, "event: response.created") != 1 {
				t.Fatalf("the client got more than one stream: %s", body)
			}
			if tt.fast && took > 2*time.Second {
				t.Errorf("answered after %s: the slow account was waited for", took)
			}
			calls := stub.admitCalls()
			if len(calls) != tt.admits {
				t.Fatalf("%d admit calls, want %d", len(calls), tt.admits)
			}
			if tt.hedged {
				h := calls[1]
				if !h.Hedge || h.GrantID != "g_1" || h.Failed != nil || h.MaxWaitMs != 0 || !reflect.DeepEqual(h.Exclude, []int64{1}) {
					t.Fatalf("hedge admit = %+v", h)
				}
			}
			r := stub.waitReport()
			if r.Status != 200 || r.ErrorClass != "" || r.AccountID != tt.want[len(tt.want)-1].account {
				t.Fatalf("report = status %d class %q account %d", r.Status, r.ErrorClass, r.AccountID)
			}
			checkRuns(t, r.Attempts, tt.want)
		})
	}
}

// Both accounts of a hedge are renewed while it runs (one lease entry each).
func TestHedgeRenewsBothAccounts(t *testing.T) {
	rn := newRenewer(nil, time.Hour)
	rn.leases["g_1"] = renewal{l: lease{GrantID: "g_1", UserID: 7, AccountID: 2, Hedged: 1}}
	got := snapshot(rn, time.Now())
	want := []lease{{GrantID: "g_1", UserID: 7, AccountID: 2, Hedged: 1}, {GrantID: "g_1", UserID: 7, AccountID: 1}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("renewed %+v, want %+v", got, want)
	}
}

// A client that leaves during a hedge ends both runs at once: 499, both attempts reported.
func TestHedgeClientLeaves(t *testing.T) {
	t.Parallel()
	fake, fakeURL := newFakeUpstream(t)
	fake.SetCredentialScript("acct-1", fakeupstream.Script{DelayMS: 5000})
	fake.SetCredentialScript("acct-2", fakeupstream.Script{DelayMS: 5000})
	stub := newContractStub(t,
		stubAccount{id: 1, baseURL: fakeURL, apiKey: "acct-1", hedgeAfterMs: 100},
		stubAccount{id: 2, baseURL: fakeURL, apiKey: "acct-2", hedgeAfterMs: 100},
	)
	p := newTestPlugin(t, stub, nil)
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequest(http.MethodPost, "/v1/responses", strings.NewReader(hedgeBody)).WithContext(ctx)
	req.Header.Set("Authorization", "Bearer "+testClientKey)
	time.AfterFunc(500*time.Millisecond, cancel)
	done := make(chan struct{})
	go func() {
		p.ServeHTTP(httptest.NewRecorder(), req)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("the request outlived its client during the hedge")
	}
	if n := len(fake.Requests()); n != 2 {
		t.Errorf("%d upstream requests, want 2 (the first and the hedge)", n)
	}
	r := stub.waitReport()
	if r.Status != statusClientClosed || r.ErrorClass != classClientGone || len(r.Attempts) != 2 {
		t.Fatalf("report = status %d class %q attempts %+v", r.Status, r.ErrorClass, r.Attempts)
	}
	for i, a := range r.Attempts {
		if a.ErrorClass != classClientGone || a.HedgeLost {
			t.Errorf("attempt %d = %+v, want client_gone: the client, not the account, ended it", i, a)
		}
	}
}

// A converted stream is hedged too: the hedge's body is converted for its own account's
// upstream model, the quick account's stream is converted for the client, and the silent
// one (message_start and a ping, then nothing) is cancelled and recorded as lost with the
// input it announced.
func TestHedgedConvertedStream(t *testing.T) {
	t.Parallel()
	up := newTestUpstream(t)
	up.set("ant-slow", upstreamReply{status: 200, events: []string{anthMsgStart, anthPing}, hold: true})
	up.set("ant-quick", upstreamReply{status: 200, events: anthFull})
	p, stub := newConvertedPlugin(t, up,
		stubAccount{id: 1, apiKey: "ant-slow", upstreamModel: "claude-slow", hedgeAfterMs: 200},
		stubAccount{id: 2, apiKey: "ant-quick", upstreamModel: "claude-quick", hedgeAfterMs: 200})
	began := time.Now()
	rec := do(p, "/v1/responses", convBodyStream, nil)
	took := time.Since(began)
	types, _ := convertedEvents(t, rec.Body.String())
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"delta":"Hello"`) || types[len(types)-1] != "response.completed" {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if strings.Count(rec.Body.String(), "event: response.created") != 1 {
		t.Fatalf("the client got more than one stream: %s", rec.Body)
	}
	if took > 2*time.Second {
		t.Errorf("answered after %s: the silent account was waited for", took)
	}
	models := map[string]string{}
	for _, r := range up.recorded() {
		var b struct {
			Model string `json:"model"`
		}
		if err := json.Unmarshal(r.body, &b); err != nil || r.path != "/v1/messages" {
			t.Fatalf("upstream request %s %q: %v", r.path, r.body, err)
		}
		models[r.header.Get("X-Api-Key")] = b.Model
	}
	if models["ant-slow"] != "claude-slow" || models["ant-quick"] != "claude-quick" {
		t.Errorf("upstream models %v, want each account's own", models)
	}
	if calls := stub.admitCalls(); len(calls) != 2 || !calls[1].Hedge {
		t.Fatalf("admit calls %+v, want the first and a hedge", calls)
	}
	r := stub.waitReport()
	if r.Status != 200 || r.AccountID != 2 {
		t.Fatalf("report = status %d account %d", r.Status, r.AccountID)
	}
	checkRuns(t, r.Attempts, []wantRun{{1, 200, classHedgeLost, true}, {2, 200, "", false}}) // the silent one had sent its headers
	if u := string(r.Attempts[0].Usage); !strings.Contains(u, `"input_tokens":10`) {
		t.Errorf("the lost attempt's usage %s, want the input its message_start announced", u)
	}
	select {
	case k := <-up.cancelled:
		if k != "ant-slow" {
			t.Errorf("cancelled %q, want ant-slow", k)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("the silent account's request was never cancelled")
	}
}
