-- 0005: operator price overrides (docs/billing.md, "Prices and the model catalogue"). The shipped defaults live in the repository
-- (controlsvc/internal/usage/default_prices.json); a row here replaces the default entry of
-- the same key or adds a new one. Prices are integer micro-dollars per million tokens.

CREATE TABLE model_prices (
    -- an exact model name or a prefix ending in '*', lower case
    model              TEXT        PRIMARY KEY CHECK (model <> '' AND model = lower(model)),
    input_micros       BIGINT      NOT NULL CHECK (input_micros >= 0),
    output_micros      BIGINT      NOT NULL CHECK (output_micros >= 0),
    cache_read_micros  BIGINT      NOT NULL CHECK (cache_read_micros >= 0),
    cache_write_micros BIGINT      NOT NULL CHECK (cache_write_micros >= 0),
    note               TEXT        NOT NULL DEFAULT '',
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
