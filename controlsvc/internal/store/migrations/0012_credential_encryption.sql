-- Account credentials encrypted at rest (docs/design.md, "Credentials at rest"). The
-- credential JSON is sealed with AES-256-GCM under the key controlsvc is given
-- (POOLGATE_CREDENTIAL_KEY), with the account id as additional data. SQL cannot encrypt:
-- controlsvc moves the plaintext rows into these columns on its first start with a key and
-- empties accounts.credential, which stays only for that move ('{}' afterwards).
ALTER TABLE accounts
    ADD COLUMN credential_ciphertext  BYTEA,
    ADD COLUMN credential_nonce       BYTEA,
    -- first 8 hex digits of the SHA-256 of the key that sealed the row
    ADD COLUMN credential_key_id      TEXT,
    -- what the admin API shows: first 8 hex digits of the SHA-256 of the api_key
    ADD COLUMN credential_fingerprint TEXT NOT NULL DEFAULT '',
    ADD CONSTRAINT accounts_credential_sealed_whole CHECK (
        (credential_ciphertext IS NULL) = (credential_nonce IS NULL)
        AND (credential_ciphertext IS NULL) = (credential_key_id IS NULL));

-- The start-up check and the rotation look rows up by key id.
CREATE INDEX accounts_credential_key_id ON accounts (credential_key_id) WHERE credential_key_id IS NOT NULL;
