-- 0020: the holds of requests in flight live in Redis (package holds; docs/billing.md, "Reserve, then settle"): the
-- PostgreSQL reservations and the reserved sums beside the balances, window usage and key
-- quotas are neither read nor written any more. A database already at 0021 gets this too:
-- migrations apply by number, each that is not yet recorded (store/migrate.go).
-- usage_records.reserved_micros stays: it records what a settled request's hold held.
DROP TABLE IF EXISTS reservations;
ALTER TABLE users DROP COLUMN IF EXISTS reserved_micros;
ALTER TABLE subscriptions DROP COLUMN IF EXISTS reserved_micros;
ALTER TABLE api_keys DROP COLUMN IF EXISTS quota_reserved_micros;
