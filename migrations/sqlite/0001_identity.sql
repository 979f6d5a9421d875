-- Identity for the local file database (development and first run); the same shape as the
-- PostgreSQL set. Ids are canonical UUID text, hashes 32-byte blobs, booleans 0/1. Timestamps are
-- declared TIMESTAMP so the driver reads them back as times; they are written in UTC at
-- microsecond precision as "YYYY-MM-DD HH:MM:SS[.ffffff]+00:00", which sorts like the instant.

-- +goose Up
CREATE TABLE users (
    id               TEXT      PRIMARY KEY,
    apple_issuer     TEXT      NOT NULL,
    apple_subject    TEXT      NOT NULL,
    email            TEXT      NOT NULL DEFAULT '',
    email_verified   BOOLEAN   NOT NULL DEFAULT 0,
    is_private_email BOOLEAN   NOT NULL DEFAULT 0,
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL,
    CONSTRAINT users_apple_identity_key UNIQUE (apple_issuer, apple_subject)
);

CREATE TABLE sessions (
    id                  TEXT      PRIMARY KEY,
    user_id             TEXT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    install_id          TEXT      NOT NULL,
    device              TEXT      NOT NULL,
    device_name         TEXT      NOT NULL DEFAULT '',
    refresh_hash        BLOB      NOT NULL,
    created_at          TIMESTAMP NOT NULL,
    last_used_at        TIMESTAMP NOT NULL,
    idle_expires_at     TIMESTAMP NOT NULL,
    absolute_expires_at TIMESTAMP NOT NULL,
    revoked_at          TIMESTAMP,
    revoke_reason       TEXT      NOT NULL DEFAULT '',
    CONSTRAINT sessions_refresh_hash_key UNIQUE (refresh_hash),
    CONSTRAINT sessions_refresh_hash_len CHECK (length(refresh_hash) = 32)
);

CREATE INDEX sessions_user_id_idx ON sessions (user_id, created_at DESC, id DESC);

CREATE TABLE session_refresh_history (
    refresh_hash BLOB      PRIMARY KEY,
    session_id   TEXT      NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    rotated_at   TIMESTAMP NOT NULL,
    CONSTRAINT session_refresh_history_hash_len CHECK (length(refresh_hash) = 32)
);

CREATE INDEX session_refresh_history_session_id_idx ON session_refresh_history (session_id);

CREATE TABLE nonces (
    hash       BLOB      PRIMARY KEY,
    expires_at TIMESTAMP NOT NULL,
    CONSTRAINT nonces_hash_len CHECK (length(hash) = 32)
);

CREATE INDEX nonces_expires_at_idx ON nonces (expires_at);

-- +goose Down
DROP TABLE nonces;
DROP TABLE session_refresh_history;
DROP TABLE sessions;
DROP TABLE users;
