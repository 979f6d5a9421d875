-- Vehicle link for the local file database; the same shape as the PostgreSQL set. Ids are
-- canonical UUID text, hashes 32-byte blobs, booleans 0/1, timestamps UTC text at microsecond
-- precision (see 0001). A connection's token set lives only in sealed_secrets.

-- +goose Up
CREATE TABLE connections (
    id                 TEXT      PRIMARY KEY,
    user_id            TEXT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    smartcar_user_id   TEXT      NOT NULL,
    status             TEXT      NOT NULL,
    scopes             TEXT      NOT NULL DEFAULT '',
    access_expires_at  TIMESTAMP NOT NULL,
    refresh_expires_at TIMESTAMP NOT NULL,
    created_at         TIMESTAMP NOT NULL,
    updated_at         TIMESTAMP NOT NULL,
    refreshed_at       TIMESTAMP,
    CONSTRAINT connections_user_smartcar_user_key UNIQUE (user_id, smartcar_user_id),
    CONSTRAINT connections_status_check CHECK (status IN ('active', 'needs_reauth', 'revoked'))
);

CREATE INDEX connections_refresh_due_idx ON connections (status, refresh_expires_at, id);

CREATE TABLE vehicles (
    id                 TEXT      PRIMARY KEY,
    user_id            TEXT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    connection_id      TEXT      NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    smartcar_id        TEXT      NOT NULL,
    make               TEXT      NOT NULL DEFAULT '',
    model              TEXT      NOT NULL DEFAULT '',
    year               INTEGER   NOT NULL DEFAULT 0,
    created_at         TIMESTAMP NOT NULL,
    locked             BOOLEAN,
    doors              TEXT,
    windows            TEXT,
    status_observed_at TIMESTAMP,
    status_fetched_at  TIMESTAMP,
    status_source      TEXT,
    CONSTRAINT vehicles_connection_smartcar_key UNIQUE (connection_id, smartcar_id)
);

CREATE INDEX vehicles_user_id_idx ON vehicles (user_id, created_at, id);

CREATE TABLE connect_states (
    hash       BLOB      PRIMARY KEY,
    user_id    TEXT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at TIMESTAMP NOT NULL,
    CONSTRAINT connect_states_hash_len CHECK (length(hash) = 32)
);

CREATE INDEX connect_states_expires_at_idx ON connect_states (expires_at);
CREATE INDEX connect_states_user_id_idx ON connect_states (user_id);

-- SQLite compares TEXT bytewise (BINARY) by default, the order the rewrap job pages in.
CREATE TABLE sealed_secrets (
    purpose       TEXT      NOT NULL,
    user_id       TEXT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    connection_id TEXT      NOT NULL DEFAULT '',
    key_version   INTEGER   NOT NULL,
    ciphertext    TEXT      NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    updated_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (purpose, user_id, connection_id),
    CONSTRAINT sealed_secrets_key_version_check CHECK (key_version >= 1),
    CONSTRAINT sealed_secrets_ciphertext_check CHECK (ciphertext <> '')
);

CREATE INDEX sealed_secrets_key_version_idx ON sealed_secrets (key_version);
CREATE INDEX sealed_secrets_user_id_idx ON sealed_secrets (user_id);

-- +goose Down
DROP TABLE sealed_secrets;
DROP TABLE connect_states;
DROP TABLE vehicles;
DROP TABLE connections;
