-- 0015: why each attempt ended and how each admission routed (docs/design.md,
-- "Usage API"). usage_attempts gains three flags: breaker_open (this attempt's failure
-- opened its (account, model) circuit breaker, as the admission that settled it recorded),
-- hedge_lost (cancelled because the other hedged attempt won) and retried_same_account (it
-- failed and the next attempt went to the same account). usage_records.routing is the
-- request's routing explanation: a JSON array with one entry per admission (the candidates
-- considered and why each was skipped), moved from Redis at settlement; NULL when none was
-- recorded (records older than this migration, a request settled without one).
-- Constant defaults and a nullable column add nothing to existing rows.

ALTER TABLE usage_attempts
    ADD COLUMN breaker_open         BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN hedge_lost           BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN retried_same_account BOOLEAN NOT NULL DEFAULT false;

ALTER TABLE usage_records
    ADD COLUMN routing JSONB;
