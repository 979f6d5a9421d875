-- The access-token signing keys an operator rotates over the admin API, shared by every replica.
-- The key itself is sealed (AES-256-GCM) under the binding (session.signing_key, the nil user, kid),
-- so the rewrap job upgrades it with every other secret at rest; the windows say when it signs and
-- until when its tokens verify. A handful of rows: a key is deleted a week after it retires.

-- +goose Up
CREATE TABLE session_signing_keys (
    kid            text COLLATE "C" PRIMARY KEY,
    key_version    integer          NOT NULL,
    ciphertext     text             NOT NULL,
    signs_from     timestamptz      NOT NULL,
    verifies_until timestamptz,
    created_at     timestamptz      NOT NULL,
    CONSTRAINT session_signing_keys_key_version_check CHECK (key_version >= 1),
    CONSTRAINT session_signing_keys_ciphertext_check CHECK (ciphertext <> ''),
    CONSTRAINT session_signing_keys_kid_check CHECK (kid <> '')
);

-- +goose Down
DROP TABLE session_signing_keys;
