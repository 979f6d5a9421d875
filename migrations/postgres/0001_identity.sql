-- Identity: accounts, app sessions with their refresh-token history, and sign-in nonces.
-- Every timestamp is timestamptz and written in UTC at microsecond precision. Token values are
-- never stored, only their SHA-256 (32 bytes).

-- +goose Up
CREATE TABLE users (
    id               uuid        PRIMARY KEY,
    apple_issuer     text        NOT NULL,
    apple_subject    text        NOT NULL,
    email            text        NOT NULL DEFAULT '',
    email_verified   boolean     NOT NULL DEFAULT false,
    is_private_email boolean     NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    CONSTRAINT users_apple_identity_key UNIQUE (apple_issuer, apple_subject)
);

CREATE TABLE sessions (
    id                  uuid        PRIMARY KEY,
    user_id             uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    install_id          text        NOT NULL,
    device              text        NOT NULL,
    device_name         text        NOT NULL DEFAULT '',
    refresh_hash        bytea       NOT NULL,
    created_at          timestamptz NOT NULL,
    last_used_at        timestamptz NOT NULL,
    idle_expires_at     timestamptz NOT NULL,
    absolute_expires_at timestamptz NOT NULL,
    revoked_at          timestamptz,
    revoke_reason       text        NOT NULL DEFAULT '',
    CONSTRAINT sessions_refresh_hash_key UNIQUE (refresh_hash),
    CONSTRAINT sessions_refresh_hash_len CHECK (octet_length(refresh_hash) = 32)
);

-- Serves ListByUser (newest first), RevokeAllForUser and the cascade from users.
CREATE INDEX sessions_user_id_idx ON sessions (user_id, created_at DESC, id DESC);

-- Refresh hashes a session rotated away from; presenting one again is reuse and revokes the session.
CREATE TABLE session_refresh_history (
    refresh_hash bytea       PRIMARY KEY,
    session_id   uuid        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    rotated_at   timestamptz NOT NULL,
    CONSTRAINT session_refresh_history_hash_len CHECK (octet_length(refresh_hash) = 32)
);

CREATE INDEX session_refresh_history_session_id_idx ON session_refresh_history (session_id);

CREATE TABLE nonces (
    hash       bytea       PRIMARY KEY,
    expires_at timestamptz NOT NULL,
    CONSTRAINT nonces_hash_len CHECK (octet_length(hash) = 32)
);

CREATE INDEX nonces_expires_at_idx ON nonces (expires_at);

-- +goose Down
DROP TABLE nonces;
DROP TABLE session_refresh_history;
DROP TABLE sessions;
DROP TABLE users;
