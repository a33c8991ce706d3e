-- 0014: the model a group's model fallback served instead of the requested one
-- (docs/billing.md, "Model fallbacks"). NULL: the requested model was served. The record is
-- priced by this model (its upstream_model is what was sent).

ALTER TABLE usage_records ADD COLUMN served_model TEXT;
