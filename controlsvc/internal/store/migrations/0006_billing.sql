-- 0006: billing that cannot be overspent and a per-attempt ledger (contract in
-- docs/billing.md). Money is integer micro-dollars.

ALTER TABLE groups
    ADD COLUMN billing_mode              TEXT    NOT NULL DEFAULT 'balance'
        CHECK (billing_mode IN ('balance', 'subscription')),
    -- subscription window limits; NULL = no limit for that window
    ADD COLUMN daily_limit_micros        BIGINT  CHECK (daily_limit_micros >= 0),
    ADD COLUMN weekly_limit_micros       BIGINT  CHECK (weekly_limit_micros >= 0),
    ADD COLUMN monthly_limit_micros      BIGINT  CHECK (monthly_limit_micros >= 0),
    -- serve models without a price (records flagged priced = false, cost 0)
    ADD COLUMN allow_unpriced            BOOLEAN NOT NULL DEFAULT false,
    -- the reservation's output estimate when the request names no maximum
    ADD COLUMN default_max_output_tokens INTEGER NOT NULL DEFAULT 4096
        CHECK (default_max_output_tokens BETWEEN 1 AND 10000000),
    -- cap of one request's reservation (a cap of 0 would admit everything unreserved)
    ADD COLUMN max_reserve_micros        BIGINT  NOT NULL DEFAULT 5000000
        CHECK (max_reserve_micros > 0);

-- money held by the reservations of requests in flight (balance mode)
ALTER TABLE users
    ADD COLUMN reserved_micros BIGINT NOT NULL DEFAULT 0 CHECK (reserved_micros >= 0);

-- a user's own rate multiplier in a group, overriding groups.rate_multiplier
CREATE TABLE user_group_rates (
    user_id         BIGINT        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    group_id        BIGINT        NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    rate_multiplier NUMERIC(12,6) NOT NULL CHECK (rate_multiplier >= 0),
    created_at      TIMESTAMPTZ   NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ   NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, group_id)
);

ALTER TABLE api_keys
    -- lifetime spend cap of the key; NULL = none
    ADD COLUMN quota_micros          BIGINT CHECK (quota_micros >= 0),
    ADD COLUMN quota_used_micros     BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN quota_reserved_micros BIGINT NOT NULL DEFAULT 0 CHECK (quota_reserved_micros >= 0),
    ADD COLUMN expires_at            TIMESTAMPTZ;

-- a user's subscription to a subscription-mode group. Windows: daily resets at midnight in
-- the billing time zone; weekly and monthly are 7- and 30-day periods counted from starts_at.
-- *_window_start is the start of the window the matching *_used_micros belongs to.
CREATE TABLE subscriptions (
    id                   BIGSERIAL   PRIMARY KEY,
    user_id              BIGINT      NOT NULL REFERENCES users (id),
    group_id             BIGINT      NOT NULL REFERENCES groups (id),
    starts_at            TIMESTAMPTZ NOT NULL,
    expires_at           TIMESTAMPTZ NOT NULL,
    status               TEXT        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'cancelled')),
    daily_window_start   TIMESTAMPTZ,
    daily_used_micros    BIGINT      NOT NULL DEFAULT 0,
    weekly_window_start  TIMESTAMPTZ,
    weekly_used_micros   BIGINT      NOT NULL DEFAULT 0,
    monthly_window_start TIMESTAMPTZ,
    monthly_used_micros  BIGINT      NOT NULL DEFAULT 0,
    reserved_micros      BIGINT      NOT NULL DEFAULT 0 CHECK (reserved_micros >= 0),
    note                 TEXT        NOT NULL DEFAULT '',
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (expires_at > starts_at)
);
CREATE INDEX subscriptions_user_group_idx ON subscriptions (user_id, group_id);

-- money held for one request in flight, released or settled by its report
CREATE TABLE reservations (
    request_id      TEXT        PRIMARY KEY,
    user_id         BIGINT      NOT NULL,
    api_key_id      BIGINT      NOT NULL,
    group_id        BIGINT      NOT NULL,
    billing_mode    TEXT        NOT NULL,
    subscription_id BIGINT,
    key_quota       BOOLEAN     NOT NULL, -- the amount is also held on the key's quota
    amount_micros   BIGINT      NOT NULL CHECK (amount_micros >= 0),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX reservations_created_idx ON reservations (created_at);

-- audited operator changes of a balance
CREATE TABLE balance_adjustments (
    id                   BIGSERIAL   PRIMARY KEY,
    user_id              BIGINT      NOT NULL REFERENCES users (id),
    amount_micros        BIGINT      NOT NULL,
    balance_after_micros BIGINT      NOT NULL,
    note                 TEXT        NOT NULL,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX balance_adjustments_user_idx ON balance_adjustments (user_id, id);

ALTER TABLE usage_records
    ADD COLUMN priced                  BOOLEAN NOT NULL DEFAULT true,
    ADD COLUMN reasoning_tokens        BIGINT  NOT NULL DEFAULT 0, -- part of output_tokens
    ADD COLUMN input_cost_micros       BIGINT  NOT NULL DEFAULT 0,
    ADD COLUMN output_cost_micros      BIGINT  NOT NULL DEFAULT 0,
    ADD COLUMN cache_read_cost_micros  BIGINT  NOT NULL DEFAULT 0,
    ADD COLUMN cache_write_cost_micros BIGINT  NOT NULL DEFAULT 0,
    ADD COLUMN rate_micros             BIGINT  NOT NULL DEFAULT 1000000,
    ADD COLUMN billing_mode            TEXT    NOT NULL DEFAULT 'balance',
    ADD COLUMN subscription_id         BIGINT,
    ADD COLUMN reserved_micros         BIGINT  NOT NULL DEFAULT 0,
    ADD COLUMN admission_ms            BIGINT  NOT NULL DEFAULT 0,
    ADD COLUMN upstream_ms             BIGINT  NOT NULL DEFAULT 0,
    -- superseded by usage_attempts
    DROP COLUMN attempt_details;
CREATE INDEX usage_records_group_idx ON usage_records (group_id, id);
CREATE INDEX usage_records_model_idx ON usage_records (model, id);

-- one row per upstream attempt of a request
CREATE TABLE usage_attempts (
    request_id            TEXT        NOT NULL,
    attempt               INTEGER     NOT NULL CHECK (attempt >= 1),
    account_id            BIGINT,
    status                INTEGER     NOT NULL,
    error_class           TEXT        NOT NULL DEFAULT '',
    input_tokens          BIGINT      NOT NULL DEFAULT 0,
    output_tokens         BIGINT      NOT NULL DEFAULT 0,
    cache_read_tokens     BIGINT      NOT NULL DEFAULT 0,
    cache_creation_tokens BIGINT      NOT NULL DEFAULT 0,
    reasoning_tokens      BIGINT      NOT NULL DEFAULT 0,
    cost_micros           BIGINT      NOT NULL DEFAULT 0,
    latency_ms            BIGINT      NOT NULL DEFAULT 0,
    first_token_ms        BIGINT      NOT NULL DEFAULT 0,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (request_id, attempt)
);
CREATE INDEX usage_attempts_account_idx ON usage_attempts (account_id, created_at);

-- cost of every attempt of the account that produced usage, at list price × rate
ALTER TABLE accounts
    ADD COLUMN usage_cost_micros BIGINT NOT NULL DEFAULT 0;
