-- 0004: per-group stream deadlines (docs/design.md, "Timeouts"). NULL keeps the plugin's configured default
-- (firstTokenTimeout, streamIdleTimeout); 0 turns the deadline off for the group. The upper
-- bound, 30 minutes, is the plugin's default overall request deadline: a longer one could
-- never fire. The admin API checks the same range first and names it in its error.

ALTER TABLE groups
    ADD COLUMN first_token_timeout_ms INTEGER
        CHECK (first_token_timeout_ms BETWEEN 0 AND 1800000),
    ADD COLUMN stream_idle_timeout_ms INTEGER
        CHECK (stream_idle_timeout_ms BETWEEN 0 AND 1800000);
