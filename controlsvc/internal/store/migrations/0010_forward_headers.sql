-- 0010: what a group's requests carry upstream of the client's headers, and an account's own
-- fixed headers (docs/design.md, "Forwarded headers").
-- forward_betas lists the anthropic-beta / OpenAI-Beta tokens the group lets through;
-- NULL = the plugin's default list, '{}' = none. user_agent is the User-Agent sent upstream;
-- '' = the client's own. The admin API validates both (token syntax, no oauth-* betas);
-- the CHECKs only bound their size.
-- accounts.headers holds the account's fixed upstream headers ({"name": "value"}); the admin
-- API refuses hop-by-hop, framing, forwarding and credential headers.

ALTER TABLE groups
    ADD COLUMN forward_betas TEXT[]
        CHECK (forward_betas IS NULL OR cardinality(forward_betas) <= 200),
    ADD COLUMN user_agent TEXT NOT NULL DEFAULT ''
        CHECK (length(user_agent) <= 512);

ALTER TABLE accounts
    ADD COLUMN headers JSONB NOT NULL DEFAULT '{}'::jsonb
        CHECK (jsonb_typeof(headers) = 'object');
