-- 0019: model catalogue imports (docs/billing.md, "Prices and the model catalogue"). An
-- override imported through POST /api/v1/admin/prices/import keeps its whole LiteLLM entry
-- (1-hour cache writes, long-context tier, context window, max output) in spec; the price
-- columns hold its base prices as before. NULL: an override written with PUT /prices/{model}.

ALTER TABLE model_prices ADD COLUMN spec JSONB;
