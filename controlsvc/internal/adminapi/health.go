package adminapi

import (
	"context"
	"net/http"
	"time"
)

// readyTimeout bounds each dependency check of /readyz.
const readyTimeout = 2 * time.Second

type readyView struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// healthz says the process is up and serving HTTP.
func (a *API) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz says whether every dependency answers; 503 otherwise. Failure details go to the
// log only.
func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	out := readyView{Status: "ready", Checks: make(map[string]string, len(a.ready))}
	status := http.StatusOK
	for _, c := range a.ready {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		err := c.Check(ctx)
		cancel()
		if err != nil {
			a.log.Warn("readiness check failed", "check", c.Name, "error", err)
			out.Checks[c.Name] = "unavailable"
			out.Status = "not_ready"
			status = http.StatusServiceUnavailable
			continue
		}
		out.Checks[c.Name] = "ok"
	}
	writeJSON(w, status, out)
}
