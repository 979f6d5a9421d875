-- Commands for the local file database; the same shape as the PostgreSQL set (see its comments).
-- Ids are canonical UUID text, timestamps UTC text at microsecond precision.

-- +goose Up
CREATE TABLE commands (
    id                  TEXT      PRIMARY KEY,
    user_id             TEXT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    vehicle_id          TEXT      NOT NULL,
    connection_id       TEXT      NOT NULL,
    session_id          TEXT,
    device              TEXT      NOT NULL DEFAULT '',
    action              TEXT      NOT NULL,
    status              TEXT      NOT NULL,
    idempotency_key     TEXT,
    error_code          TEXT      NOT NULL DEFAULT '',
    upstream_request_id TEXT      NOT NULL DEFAULT '',
    retry_after_seconds INTEGER   NOT NULL DEFAULT 0,
    created_at          TIMESTAMP NOT NULL,
    updated_at          TIMESTAMP NOT NULL,
    dispatched_at       TIMESTAMP,
    finished_at         TIMESTAMP,
    deadline_at         TIMESTAMP NOT NULL,
    CONSTRAINT commands_action_check CHECK (action IN ('lock', 'unlock')),
    CONSTRAINT commands_status_check CHECK (status IN ('accepted', 'dispatched', 'succeeded', 'failed', 'unknown', 'expired')),
    CONSTRAINT commands_idempotency_key_check CHECK (idempotency_key IS NULL OR length(idempotency_key) BETWEEN 1 AND 64),
    CONSTRAINT commands_user_idempotency_key UNIQUE (user_id, idempotency_key)
);

CREATE INDEX commands_vehicle_history_idx ON commands (vehicle_id, created_at DESC, id DESC);
CREATE INDEX commands_user_rate_idx ON commands (user_id, action, created_at);
CREATE INDEX commands_in_flight_idx ON commands (created_at) WHERE status IN ('accepted', 'dispatched');
CREATE INDEX commands_vehicle_in_flight_idx ON commands (vehicle_id) WHERE status IN ('accepted', 'dispatched');

CREATE TABLE command_guards (
    vehicle_id       TEXT      PRIMARY KEY REFERENCES vehicles (id) ON DELETE CASCADE,
    user_id          TEXT      NOT NULL,
    command_id       TEXT      NOT NULL,
    lease_expires_at TIMESTAMP NOT NULL,
    CONSTRAINT command_guards_command_id_key UNIQUE (command_id)
);

-- +goose Down
DROP TABLE command_guards;
DROP TABLE commands;
