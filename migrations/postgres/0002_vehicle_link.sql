-- Vehicle link: Smartcar connections with their vehicles and cached vehicle status, pending
-- Connect flows, and the one table of secrets at rest. A connection's token set lives only in
-- sealed_secrets, sealed (AES-256-GCM, bound to its row) under its binding; no other column holds
-- anything of a token. Timestamps are timestamptz, written in UTC at microsecond precision.

-- +goose Up
CREATE TABLE connections (
    id                 uuid        PRIMARY KEY,
    user_id            uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    smartcar_user_id   text        NOT NULL,
    status             text        NOT NULL,
    -- Granted scopes, space-separated (a scope never contains a space).
    scopes             text        NOT NULL DEFAULT '',
    access_expires_at  timestamptz NOT NULL,
    refresh_expires_at timestamptz NOT NULL,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    refreshed_at       timestamptz,
    CONSTRAINT connections_user_smartcar_user_key UNIQUE (user_id, smartcar_user_id),
    CONSTRAINT connections_status_check CHECK (status IN ('active', 'needs_reauth', 'revoked'))
);

-- Serves the refresher: active connections whose refresh token expires soonest.
CREATE INDEX connections_refresh_due_idx ON connections (status, refresh_expires_at, id);

-- One row per linked car. The cached status sits in the same row, so the vehicle list is one
-- join of vehicles and connections; status_observed_at is NULL until a status was recorded.
CREATE TABLE vehicles (
    id                 uuid        PRIMARY KEY,
    user_id            uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    connection_id      uuid        NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    smartcar_id        text        NOT NULL,
    make               text        NOT NULL DEFAULT '',
    model              text        NOT NULL DEFAULT '',
    year               integer     NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL,
    locked             boolean,
    -- Openings as a JSON array of {"type", "status"} objects.
    doors              text,
    windows            text,
    status_observed_at timestamptz,
    status_fetched_at  timestamptz,
    status_source      text,
    CONSTRAINT vehicles_connection_smartcar_key UNIQUE (connection_id, smartcar_id)
);

-- Serves the vehicle list (oldest first) and the cascade from users.
CREATE INDEX vehicles_user_id_idx ON vehicles (user_id, created_at, id);

-- Pending Connect flows, known only by the SHA-256 of their state value.
CREATE TABLE connect_states (
    hash       bytea       PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL,
    CONSTRAINT connect_states_hash_len CHECK (octet_length(hash) = 32)
);

CREATE INDEX connect_states_expires_at_idx ON connect_states (expires_at);
CREATE INDEX connect_states_user_id_idx ON connect_states (user_id);

-- Every secret at rest, keyed by the binding its ciphertext is sealed to; connection_id is ''
-- for per-user secrets. The text columns sort bytewise (COLLATE "C") so that the rewrap job's
-- paging order is the same everywhere, whatever the database's locale.
CREATE TABLE sealed_secrets (
    purpose       text COLLATE "C" NOT NULL,
    user_id       uuid             NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    connection_id text COLLATE "C" NOT NULL DEFAULT '',
    key_version   integer          NOT NULL,
    ciphertext    text             NOT NULL,
    created_at    timestamptz      NOT NULL,
    updated_at    timestamptz      NOT NULL,
    PRIMARY KEY (purpose, user_id, connection_id),
    CONSTRAINT sealed_secrets_key_version_check CHECK (key_version >= 1),
    CONSTRAINT sealed_secrets_ciphertext_check CHECK (ciphertext <> '')
);

-- Serves the key-version counts and the rewrap job's search for old versions.
CREATE INDEX sealed_secrets_key_version_idx ON sealed_secrets (key_version);
-- Serves the cascade from users.
CREATE INDEX sealed_secrets_user_id_idx ON sealed_secrets (user_id);

-- +goose Down
DROP TABLE sealed_secrets;
DROP TABLE connect_states;
DROP TABLE vehicles;
DROP TABLE connections;
