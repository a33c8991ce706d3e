-- 0007: a group's model rules (docs/design.md, "Group model rules and dispatch"). model_mapping maps the requested model to the one
-- the group's accounts are asked for ({"requested": "upstream"}, a key ending in * matches by
-- prefix, the longest wins); admission applies it before each account's own mapping.
-- restrict_models serves only the models that mapping names, so it needs a mapping that
-- names something. claude_code_only answers every endpoint but /v1/messages with 403, and
-- /v1/messages needs an anthropic group, so the flag only makes sense there. The admin API
-- reports a violation of either rule as a 400 naming the field.

ALTER TABLE groups
    ADD COLUMN model_mapping JSONB NOT NULL DEFAULT '{}'::jsonb
        CHECK (jsonb_typeof(model_mapping) = 'object'),
    ADD COLUMN restrict_models BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN claude_code_only BOOLEAN NOT NULL DEFAULT false,
    ADD CONSTRAINT groups_restrict_models_mapping
        CHECK (NOT restrict_models OR model_mapping <> '{}'::jsonb),
    ADD CONSTRAINT groups_claude_code_only_platform
        CHECK (NOT claude_code_only OR platform = 'anthropic');
