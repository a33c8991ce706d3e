package gateway

import (
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/slots"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// refuse logs and counts the reports the batch writer refused because their request has no
// grant (Ungranted), or because its reservation belongs to another user, key or group (docs/billing.md, "Reserve, then
// settle"), and lists the user slots of the reservations' users, which the reports' own
// user_id may have missed (released in the batch's pipeline after its write,
// reports_redis.go). A retry cannot fix them, so the batch is still acknowledged;
// their reservations stay until the sweeper releases them after POOLGATE_RESERVATION_TTL.
func (s *Service) refuse(valid []*report, refused []store.RefusedWrite) (map[string]bool, []slots.Lease) {
	if len(refused) == 0 {
		return nil, nil
	}
	out := make(map[string]bool, len(refused))
	for _, r := range refused {
		out[r.RequestID] = true
	}
	var leases []slots.Lease
	for _, rep := range valid {
		if !out[rep.RequestID] {
			continue
		}
		res := refusedOf(refused, rep.RequestID)
		if res.Ungranted {
			// No reservation and no record: controlsvc never admitted the request (or its
			// reservation outlived POOLGATE_RESERVATION_TTL). Its leases went in step 1.
			s.metrics.reportsRefusedUngranted.Inc()
			if ok, suppressed := s.refusals.allow("report_no_grant", time.Now()); ok {
				s.log.Error("refusing report of a request without a grant", "request_id", truncate(rep.RequestID, maxLogField),
					"grant_id", truncate(rep.GrantID, maxLogField), "user_id", rep.UserID, "suppressed", suppressed)
			}
			continue
		}
		s.metrics.reportsRefusedMismatch.Inc()
		if rep.GrantID != "" && res.UserID != rep.UserID {
			leases = append(leases, slots.Lease{Kind: slots.KindUser, ID: res.UserID, GrantID: rep.GrantID})
		}
		s.log.Error("refusing report that disagrees with its reservation", "request_id", rep.RequestID,
			"grant_id", rep.GrantID, "user_id", rep.UserID, "api_key_id", rep.APIKeyID, "group_id", rep.GroupID,
			"reserved_user_id", res.UserID, "reserved_api_key_id", res.APIKeyID, "reserved_group_id", res.GroupID)
	}
	return out, leases
}

func refusedOf(refused []store.RefusedWrite, requestID string) store.RefusedWrite {
	for _, r := range refused {
		if r.RequestID == requestID {
			return r
		}
	}
	return store.RefusedWrite{}
}
