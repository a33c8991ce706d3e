package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/poolgate/poolgate/internal/stack"
)

// The breakdown of poolgate's added time by stage at c=1, non-stream, from
// what exists without a product change: the client's latency and the arrival time at the
// fake upstream (loadTraced, gateway against Traefik alone), the ledger's own timings of
// the same requests (usage records of the c=1 key: admission_ms, upstream_ms, duration_ms,
// whole milliseconds) and the floor; the plugin's own stages come from tests/yaegi/stagebench
// (stages.go), timed under Yaegi outside the stack. A stage nothing times is printed as not
// measured, with the reason.

// ledgerTimings are the medians of the usage records' timings, ms.
type ledgerTimings struct {
	n                                      int
	admission, upstream, firstToken, total float64
}

func usageTimings(st *stack.Stack, keyID int64) (ledgerTimings, error) {
	url := fmt.Sprintf("%s/api/v1/admin/usage?api_key_id=%d&limit=500", st.ControlAdminURL, keyID)
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+st.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ledgerTimings{}, fmt.Errorf("GET /usage: %w", err)
	}
	defer resp.Body.Close()
	var page struct {
		Items []struct {
			Status       int   `json:"status"`
			AdmissionMs  int64 `json:"admission_ms"`
			UpstreamMs   int64 `json:"upstream_ms"`
			FirstTokenMs int64 `json:"first_token_ms"`
			DurationMs   int64 `json:"duration_ms"`
		} `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil || resp.StatusCode != http.StatusOK {
		return ledgerTimings{}, fmt.Errorf("GET /usage: %s %v", resp.Status, err)
	}
	var adm, up, ft, dur []int64
	for _, it := range page.Items {
		if it.Status != http.StatusOK {
			continue
		}
		adm, up, ft, dur = append(adm, it.AdmissionMs), append(up, it.UpstreamMs), append(ft, it.FirstTokenMs), append(dur, it.DurationMs)
	}
	return ledgerTimings{n: len(adm), admission: median(adm), upstream: median(up), firstToken: median(ft), total: median(dur)}, nil
}

// median of whole milliseconds; the mean of the middle two for an even count.
func median(v []int64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]int64(nil), v...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return float64(s[len(s)/2])
	}
	return float64(s[len(s)/2-1]+s[len(s)/2]) / 2
}

func ms(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }

// printBreakdown prints the stages; differences are of medians (p50), so they need not add
// up exactly.
func printBreakdown(st *stack.Stack, keyID int64, gw, tr tracedResult, floor result, work controlsvcWork) error {
	lt, err := usageTimings(st, keyID)
	if err != nil {
		fmt.Printf("\nbreakdown: the ledger could not be read: %v\n", err)
		return err
	}
	added := gw.p50 - tr.p50
	toUp := pct(gw.toUpstream, 50) - pct(tr.toUpstream, 50)
	back := pct(gw.fromUp, 50) - pct(tr.fromUp, 50)
	adm := ms(lt.admission)
	fmt.Printf("\nbreakdown of poolgate's added time, non-stream c=1 (p50s; gateway %d and Traefik %d requests matched at the fake upstream, %d usage records)\n",
		len(gw.toUpstream), len(tr.toUpstream), lt.n)
	row := func(stage string, d string, how string) { fmt.Printf("  %-34s %12s   %s\n", stage, d, how) }
	row("added latency (client)", round(added).String(), "gateway p50 - Traefik alone p50")
	row("  before the upstream", round(toUp).String(), "client send -> fake upstream arrival, gateway - Traefik alone")
	if lt.admission < 1 {
		// Whole milliseconds: a p50 of 0 says "under 1 ms", and nothing can be derived from it.
		row("    admit round trip", "< 1ms", "ledger admission_ms p50 is 0 (whole ms; the plugin's admit calls): see controlsvc work and the admit stages below")
		row("    plugin parse + forward set-up", "not derived", "the admit round trip above is known only to the millisecond; see the plugin stages below")
	} else {
		row("    admit round trip", round(adm).String(), "ledger admission_ms p50 (whole ms; the plugin's admit calls)")
		row("    plugin parse + forward set-up", round(toUp-adm).String(), "the line above it minus admission_ms (derived)")
	}
	row("      interpreter floor", round(floor.p50-tr.p50).String(), "empty Yaegi middleware p50 - Traefik alone p50")
	row("  after the upstream", round(back).String(), "fake upstream arrival -> reply read, gateway - Traefik alone (relay, reply handling)")
	figs, serr := pluginStages() // stages.go
	stageRow := func(label, stage string) {
		if d, how, ok := stageYaegi(figs, stage); ok {
			row(label, round(d).String(), how)
			return
		}
		row(label, "not measured", fmt.Sprintf("tests/yaegi/stagebench did not run: %v", serr))
	}
	stageRow("plugin parse", "parse")
	stageRow("admit call, plugin side", "admit-codec")
	stageRow("admit call over loopback", "admit")
	stageRow("forward set-up", "forward")
	stageRow("relay, per SSE event", "relay-event")
	if work.err != nil {
		row("controlsvc work", "not measured", work.err.Error())
	} else {
		row("controlsvc work", round(work.mean).String(), fmt.Sprintf("mean per grant inside the admit round trip, controlsvc's /metrics (%d grants of the run)", work.grants))
	}
	stageRow("report (enqueue)", "report")
	stageRow("report (send, off path)", "report-send")
	fmt.Printf("  ledger p50s: admission_ms %.1f, upstream_ms %.1f, first_token_ms %.1f, duration_ms %.1f\n",
		lt.admission, lt.upstream, lt.firstToken, lt.total)
	if serr == nil {
		printStages(figs)
	}
	return nil
}
