package gateway

import (
	"net/http"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/metrics"
)

// Names of the internal API's counters at GET /metrics (docs/design.md, "Metrics").
const (
	metricReportsDropped   = "poolgate_reports_dropped_total"
	metricRecordsWritten   = "poolgate_report_records_written_total"
	metricRecordsDuplicate = "poolgate_report_records_duplicate_total"
	metricReportsInvalid   = "poolgate_reports_invalid_total"
	metricAdmissions       = "poolgate_admissions_total"
	metricUsageEstimated   = "poolgate_usage_estimated_total"
	metricReportsRefused   = "poolgate_reports_refused_total"
	metricReadmitRefused   = "poolgate_readmissions_refused_total"
	metricBreakerOpenings  = "poolgate_breaker_openings_total"
	metricBreakerPanics    = "poolgate_breaker_panics_total"
	metricAdmitMicros      = "poolgate_admission_microseconds_total"
)

// gatewayMetrics are the counters of the internal API. They count since this controlsvc
// started, like every Prometheus counter; rates and sums across instances are the
// scraper's business.
type gatewayMetrics struct {
	reportsDropped   *metrics.Counter // as the gateways report them with their batches
	recordsWritten   *metrics.Counter // usage records newly stored
	recordsDuplicate *metrics.Counter // valid reports already stored: retries, replays
	reportsInvalid   *metrics.Counter // reports without request_id or user_id
	usageEstimated   *metrics.Counter // usage records stored billed by estimate
	// reports refused because their reservation belongs to another user, key or group
	reportsRefusedMismatch *metrics.Counter
	// reports refused because their request has no grant (no reservation, no record)
	reportsRefusedUngranted *metrics.Counter
	// re-admissions refused because failed.account_id is not the grant's account
	readmitRefusedAccount *metrics.Counter
	breakerPanics         *metrics.Counter // admissions that found every candidate's breaker open
	admitGranted          *metrics.Counter
	admitRefused          *metrics.Counter
	admitError            *metrics.Counter
	// breakers of (account, model) opened, or re-opened by a failed probe
	breakerOpenings *metrics.Counter
	// the time controlsvc spent on granted admit calls (waits included), from the request
	// read to the answer written: over admitGranted it is the mean controlsvc work per
	// grant, which make bench shows next to the plugin's round trip
	admitGrantedMicros *metrics.Counter
}

func newGatewayMetrics(reg *metrics.Registry) gatewayMetrics {
	if reg == nil {
		reg = metrics.NewRegistry()
	}
	const admitHelp = "Admit calls by result: granted (200), refused (an answer with X-Poolgate-Reject), error (anything else, which the gateway answers with 503)."
	return gatewayMetrics{
		reportsDropped: reg.Counter(metricReportsDropped,
			"Completion reports the gateways dropped unsent (spool full, or refused as invalid), as they report them with their next acknowledged batch; their usage is lost."),
		recordsWritten: reg.Counter(metricRecordsWritten,
			"Usage records stored from completion reports."),
		recordsDuplicate: reg.Counter(metricRecordsDuplicate,
			"Completion reports acknowledged without a write because their request_id was stored already (retried or repeated batches)."),
		reportsInvalid: reg.Counter(metricReportsInvalid,
			"Completion reports dropped by controlsvc because they lack request_id or user_id."),
		usageEstimated: reg.Counter(metricUsageEstimated,
			"Usage records stored billed by estimate: committed answers without complete usage from the upstream (usage_source estimate, or a 2xx report without usage)."),
		reportsRefusedMismatch: reg.Counter(metricReportsRefused, reportsRefusedHelp,
			metrics.Label{Name: "reason", Value: "reservation_mismatch"}),
		reportsRefusedUngranted: reg.Counter(metricReportsRefused, reportsRefusedHelp,
			metrics.Label{Name: "reason", Value: "no_grant"}),
		readmitRefusedAccount: reg.Counter(metricReadmitRefused,
			"Re-admissions refused because failed.account_id is not the account the grant holds (nothing marked).",
			metrics.Label{Name: "reason", Value: "account_mismatch"}),
		admitGranted: reg.Counter(metricAdmissions, admitHelp, metrics.Label{Name: "result", Value: "granted"}),
		admitRefused: reg.Counter(metricAdmissions, admitHelp, metrics.Label{Name: "result", Value: "refused"}),
		admitError:   reg.Counter(metricAdmissions, admitHelp, metrics.Label{Name: "result", Value: "error"}),
		admitGrantedMicros: reg.Counter(metricAdmitMicros,
			"Microseconds controlsvc spent on admit calls, from the request's arrival to the answer written (waits included), by result; divided by poolgate_admissions_total it is the mean time per call.",
			metrics.Label{Name: "result", Value: "granted"}),
		breakerPanics: reg.Counter(metricBreakerPanics,
			"Admissions that found the breakers of every candidate open for the model and tried the accounts all the same (panic mode)."),
		breakerOpenings: reg.Counter(metricBreakerOpenings,
			"Circuit breakers of an (account, upstream model) opened by failures within the window, or re-opened by a failed half-open probe."),
	}
}

// countAdmissions counts every admit call by its answer.
func (s *Service) countAdmissions(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		began := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		switch {
		case sw.status == http.StatusOK:
			s.metrics.admitGrantedMicros.Add(time.Since(began).Microseconds())
			s.metrics.admitGranted.Inc()
		case sw.Header().Get(RejectHeader) != "":
			s.metrics.admitRefused.Inc()
		default:
			s.metrics.admitError.Inc()
		}
	})
}

// statusWriter remembers the status written through it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

const reportsRefusedHelp = "Completion reports refused unstored and uncharged, by reason; reservation_mismatch: the report's user, key or group disagrees with its request's reservation; no_grant: its request has no reservation and no record (never admitted, or its reservation expired)."
