-- 0008: cap_output_tokens makes a group's reservations an upper bound of what a text request
-- can cost (docs/billing.md, "Output cap"): a request that names no output maximum is sent
-- upstream with the group's default_max_output_tokens as its limit, and its input is
-- reserved at one token per body byte. Off by default: it changes what clients get (an
-- answer longer than the default ends as incomplete).

ALTER TABLE groups
    ADD COLUMN cap_output_tokens BOOLEAN NOT NULL DEFAULT false;
