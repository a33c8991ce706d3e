-- 0002: error passthrough rules (docs/design.md, "POST /internal/v1/upstream-error"). They rewrite the client's answer to an
-- upstream error that failover could not fix, or that was not worth failing over.

CREATE TABLE error_passthrough_rules (
    id               BIGSERIAL PRIMARY KEY,
    name             TEXT        NOT NULL,
    enabled          BOOLEAN     NOT NULL DEFAULT true,
    -- evaluated in ascending order; ties by id
    priority         INTEGER     NOT NULL DEFAULT 0,
    error_codes      INTEGER[]   NOT NULL DEFAULT '{}',
    -- case-insensitive substrings of the first 8 KiB of the upstream body
    keywords         TEXT[]      NOT NULL DEFAULT '{}',
    match_mode       TEXT        NOT NULL DEFAULT 'any' CHECK (match_mode IN ('any', 'all')),
    -- empty = every platform
    platforms        TEXT[]      NOT NULL DEFAULT '{}',
    passthrough_code BOOLEAN     NOT NULL DEFAULT true,
    response_code    INTEGER     CHECK (response_code BETWEEN 100 AND 599),
    passthrough_body BOOLEAN     NOT NULL DEFAULT true,
    custom_message   TEXT,
    skip_monitoring  BOOLEAN     NOT NULL DEFAULT false,
    description      TEXT        NOT NULL DEFAULT '',
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (cardinality(error_codes) + cardinality(keywords) > 0),
    CHECK (passthrough_code OR response_code IS NOT NULL),
    CHECK (passthrough_body OR custom_message IS NOT NULL)
);
