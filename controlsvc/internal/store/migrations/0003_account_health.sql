-- 0003: account health (docs/design.md, "Account health"). The deadlines rate_limited_until, overloaded_until and
-- paused_until exist since 0001; this adds what the 403 rule, the admin's view and per-model
-- blocks need.

ALTER TABLE accounts
    -- why the health rules disabled the account ("" when it is active or an operator
    -- disabled it); cleared when an operator sets the status or clears the state
    ADD COLUMN disabled_reason TEXT          NOT NULL DEFAULT '',
    -- times of the recent upstream 403s, oldest first: the third within 3 h disables the
    -- account. Written under the row lock, so the count is exact across instances.
    ADD COLUMN forbidden_at    TIMESTAMPTZ[] NOT NULL DEFAULT '{}';

-- An account blocked for one upstream model (the model name sent upstream, after the
-- account's model mapping) after the upstream said it does not know it. Expired rows are
-- ignored, and purged when the account is marked again or its state is cleared.
CREATE TABLE account_model_blocks (
    account_id    BIGINT      NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    model         TEXT        NOT NULL,
    blocked_until TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account_id, model)
);
