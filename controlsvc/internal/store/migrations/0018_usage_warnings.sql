-- 0018: what a converted request could not carry over (docs/design.md,
-- "Conversion contract"): usage_records.warnings lists, in short words, each tool with no
-- Claude equivalent and each option Claude has no mode for, as the plugin reported them
-- (at most 8, each at most 160 characters). NULL when there were none, as on every record
-- older than this migration; a nullable column adds nothing to existing rows.

ALTER TABLE usage_records
    ADD COLUMN warnings TEXT[];
