-- 0009: where a record's tokens come from (docs/billing.md, "Disconnects, drains and
-- estimates"): 'upstream' = the upstream's own usage; 'estimate' = the attempt was
-- committed to the client but no complete usage came, so it was billed by estimate. Every
-- record stored before this migration was billed from the upstream's usage.
-- usage_attempts carries it too: the answering attempt's is the record's (its tokens are
-- the record's), an earlier attempt's usage is always the upstream's.
-- A constant default adds the column without rewriting the table.

ALTER TABLE usage_records
    ADD COLUMN usage_source TEXT NOT NULL DEFAULT 'upstream'
        CHECK (usage_source IN ('upstream', 'estimate'));

ALTER TABLE usage_attempts
    ADD COLUMN usage_source TEXT NOT NULL DEFAULT 'upstream'
        CHECK (usage_source IN ('upstream', 'estimate'));
