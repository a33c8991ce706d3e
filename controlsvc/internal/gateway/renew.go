package gateway

import (
	"net/http"

	"github.com/poolgate/poolgate/controlsvc/internal/slots"
)

// maxRenewLeases bounds one renew call (the plugin renews all its live requests at once).
const maxRenewLeases = 100_000

type renewLease struct {
	GrantID   string `json:"grant_id"`
	UserID    int64  `json:"user_id"`
	AccountID int64  `json:"account_id"`
}

type renewRequest struct {
	Leases []renewLease `json:"leases"`
}

type renewReply struct {
	Renewed int `json:"renewed"`
}

// handleRenew re-arms the user and account leases of live requests. A lease counts as
// renewed when its user lease still existed; expired leases are not recreated, so a request
// that outlived its lease keeps running but no longer counts against the limits.
func (s *Service) handleRenew(w http.ResponseWriter, r *http.Request) {
	var req renewRequest
	if err := decodeBody(w, r, maxRenewBody, &req); err != nil {
		writeAPIError(w, http.StatusBadRequest, "invalid_request_error", "Failed to parse leases: "+err.Error())
		return
	}
	if len(req.Leases) > maxRenewLeases {
		writeAPIError(w, http.StatusBadRequest, "invalid_request_error", "Too many leases in one call")
		return
	}
	var leases []slots.Lease
	userIdx := make([]int, 0, len(req.Leases)) // index in leases of each request's user lease, -1 if none
	for _, l := range req.Leases {
		if l.GrantID == "" || l.UserID <= 0 {
			userIdx = append(userIdx, -1)
			continue
		}
		userIdx = append(userIdx, len(leases))
		leases = append(leases, slots.Lease{Kind: slots.KindUser, ID: l.UserID, GrantID: l.GrantID})
		if l.AccountID > 0 {
			leases = append(leases, slots.Lease{Kind: slots.KindAccount, ID: l.AccountID, GrantID: l.GrantID})
		}
	}
	renewed, err := s.slots.RenewMany(r.Context(), leases)
	if err != nil {
		writeInternalError(w, s.log, "renewing leases", err, "leases", len(req.Leases))
		return
	}
	n := 0
	for _, i := range userIdx {
		if i >= 0 && renewed[i] {
			n++
		}
	}
	writeJSON(w, http.StatusOK, renewReply{Renewed: n})
}
