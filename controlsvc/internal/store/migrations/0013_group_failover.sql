-- 0013: a group's failover settings (docs/design.md, "Health model" and "Model
-- fallbacks"). NULL keeps the gateway's default for every setting; the admin API checks the
-- same ranges first and names them in its error.
-- response_header_timeout_ms bounds a non-stream attempt's time to response headers (0 = off,
-- NULL = the plugin's responseHeaderTimeout, 300 s). hedge_after_ms starts a second streaming
-- attempt when the first has produced nothing after that long (NULL or 0 = off).
-- breaker_threshold failures of one (account, model) within breaker_window_ms open its
-- circuit breaker for breaker_cooldown_ms, doubled per failed probe up to 10 minutes.
-- model_fallbacks: {"<model>" | "*": {"context_length_exceeded": [...], "model_not_found":
-- [...], "exhausted": [...]}}, the models tried next, in order.

ALTER TABLE groups
    ADD COLUMN response_header_timeout_ms INTEGER
        CHECK (response_header_timeout_ms BETWEEN 0 AND 1800000),
    ADD COLUMN hedge_after_ms INTEGER
        CHECK (hedge_after_ms BETWEEN 0 AND 1800000),
    ADD COLUMN breaker_threshold INTEGER
        CHECK (breaker_threshold BETWEEN 1 AND 1000),
    ADD COLUMN breaker_window_ms INTEGER
        CHECK (breaker_window_ms BETWEEN 1000 AND 86400000),
    ADD COLUMN breaker_cooldown_ms INTEGER
        CHECK (breaker_cooldown_ms BETWEEN 100 AND 600000),
    ADD COLUMN model_fallbacks JSONB NOT NULL DEFAULT '{}'::jsonb
        CHECK (jsonb_typeof(model_fallbacks) = 'object' AND pg_column_size(model_fallbacks) <= 65536);
