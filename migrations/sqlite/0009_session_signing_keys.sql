-- The access-token signing keys for the local file database (see the PostgreSQL set).

-- +goose Up
CREATE TABLE session_signing_keys (
    kid            TEXT      PRIMARY KEY,
    key_version    INTEGER   NOT NULL,
    ciphertext     TEXT      NOT NULL,
    signs_from     TIMESTAMP NOT NULL,
    verifies_until TIMESTAMP,
    created_at     TIMESTAMP NOT NULL,
    CONSTRAINT session_signing_keys_key_version_check CHECK (key_version >= 1),
    CONSTRAINT session_signing_keys_ciphertext_check CHECK (ciphertext <> ''),
    CONSTRAINT session_signing_keys_kid_check CHECK (kid <> '')
);

-- +goose Down
DROP TABLE session_signing_keys;
