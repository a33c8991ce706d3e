-- 0001: the walking skeleton's schema. Money is integer micro-dollars (1 USD = 1 000 000),
-- never floating point.

CREATE TABLE users (
    id             BIGSERIAL PRIMARY KEY,
    name           TEXT        NOT NULL,
    concurrency    INTEGER     NOT NULL DEFAULT 5 CHECK (concurrency >= 0),
    balance_micros BIGINT      NOT NULL DEFAULT 0,
    status         TEXT        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE groups (
    id              BIGSERIAL PRIMARY KEY,
    name            TEXT          NOT NULL UNIQUE,
    platform        TEXT          NOT NULL CHECK (platform IN ('openai', 'anthropic')),
    rate_multiplier NUMERIC(12,6) NOT NULL DEFAULT 1 CHECK (rate_multiplier >= 0),
    status          TEXT          NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_at      TIMESTAMPTZ   NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ   NOT NULL DEFAULT now()
);

CREATE TABLE accounts (
    id                BIGSERIAL PRIMARY KEY,
    name              TEXT        NOT NULL,
    platform          TEXT        NOT NULL CHECK (platform IN ('openai', 'anthropic')),
    base_url          TEXT        NOT NULL,
    -- upstream credential, e.g. {"api_key": "sk-…"}; never returned by any endpoint
    credential        JSONB       NOT NULL DEFAULT '{}',
    concurrency       INTEGER     NOT NULL DEFAULT 10 CHECK (concurrency >= 0),
    priority          INTEGER     NOT NULL DEFAULT 50,
    status            TEXT        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    -- {"requested": "upstream"}; a key ending in * matches by prefix; empty = every model
    model_mapping     JSONB       NOT NULL DEFAULT '{}',
    -- health, set from upstream failures (see docs/design.md)
    rate_limited_until TIMESTAMPTZ,
    overloaded_until   TIMESTAMPTZ,
    paused_until       TIMESTAMPTZ,
    pause_reason       TEXT        NOT NULL DEFAULT '',
    last_used_at       TIMESTAMPTZ,
    deleted_at         TIMESTAMPTZ,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE account_groups (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    group_id   BIGINT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    PRIMARY KEY (account_id, group_id)
);
CREATE INDEX account_groups_group_idx ON account_groups (group_id);

CREATE TABLE api_keys (
    id           BIGSERIAL PRIMARY KEY,
    user_id      BIGINT      NOT NULL REFERENCES users (id),
    group_id     BIGINT      NOT NULL REFERENCES groups (id),
    name         TEXT        NOT NULL DEFAULT '',
    -- hex SHA-256 of the key; the key itself is shown once, at creation
    key_hash     TEXT        NOT NULL UNIQUE,
    -- first characters of the key, for operators to recognise it
    key_prefix   TEXT        NOT NULL,
    status       TEXT        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    last_used_at TIMESTAMPTZ,
    deleted_at   TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_user_idx ON api_keys (user_id);

CREATE TABLE usage_records (
    id                    BIGSERIAL PRIMARY KEY,
    request_id            TEXT        NOT NULL UNIQUE,
    grant_id              TEXT        NOT NULL DEFAULT '',
    user_id               BIGINT      NOT NULL,
    api_key_id            BIGINT      NOT NULL,
    group_id              BIGINT      NOT NULL,
    account_id            BIGINT,
    path                  TEXT        NOT NULL DEFAULT '',
    model                 TEXT        NOT NULL DEFAULT '',
    upstream_model        TEXT        NOT NULL DEFAULT '',
    stream                BOOLEAN     NOT NULL DEFAULT false,
    status                INTEGER     NOT NULL,
    error_class           TEXT        NOT NULL DEFAULT '',
    input_tokens          BIGINT      NOT NULL DEFAULT 0, -- exclusive of cache tokens
    output_tokens         BIGINT      NOT NULL DEFAULT 0,
    cache_read_tokens     BIGINT      NOT NULL DEFAULT 0,
    cache_creation_tokens BIGINT      NOT NULL DEFAULT 0,
    cost_micros           BIGINT      NOT NULL DEFAULT 0,
    duration_ms           BIGINT      NOT NULL DEFAULT 0,
    first_token_ms        BIGINT      NOT NULL DEFAULT 0,
    attempts              INTEGER     NOT NULL DEFAULT 0,
    attempt_details       JSONB       NOT NULL DEFAULT '[]',
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX usage_records_user_idx    ON usage_records (user_id, id);
CREATE INDEX usage_records_key_idx     ON usage_records (api_key_id, id);
CREATE INDEX usage_records_account_idx ON usage_records (account_id, id);
CREATE INDEX usage_records_created_idx ON usage_records (created_at);
