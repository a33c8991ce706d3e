package store

import "time"

// DefaultReservationTTL is how long a hold lives without its report: above the longest a
// report can take (docs/design.md, "Timeouts": a client that never reads holds its request
// until Traefik's 35-minute writeTimeout ends the blocked write), so only holds of requests
// whose report will never come (a crashed gateway) are released by the sweeper
// (POOLGATE_RESERVATION_TTL, package holds).
const DefaultReservationTTL = 40 * time.Minute
