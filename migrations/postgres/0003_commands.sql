-- Commands: every lock and unlock with its lifecycle, kept as an append-only history (rows are
-- never deleted by the service, and a status only moves forward), and the guard that admits one
-- in-flight command per vehicle across all replicas. The guard is a lease: a row per vehicle that
-- names the command holding it and until when; an expired lease is taken over by the next
-- command, so a crashed process never locks a car out for longer than its lease.

-- +goose Up
CREATE TABLE commands (
    id                  uuid        PRIMARY KEY,
    user_id             uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- No foreign key: the history outlives a disconnected vehicle and its connection.
    vehicle_id          uuid        NOT NULL,
    connection_id       uuid        NOT NULL,
    session_id          uuid,
    device              text        NOT NULL DEFAULT '',
    action              text        NOT NULL,
    status              text        NOT NULL,
    idempotency_key     text,
    error_code          text        NOT NULL DEFAULT '',
    upstream_request_id text        NOT NULL DEFAULT '',
    retry_after_seconds integer     NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    dispatched_at       timestamptz,
    finished_at         timestamptz,
    -- The TTL: an accepted command not dispatched by then expires and is never sent.
    deadline_at         timestamptz NOT NULL,
    CONSTRAINT commands_action_check CHECK (action IN ('lock', 'unlock')),
    CONSTRAINT commands_status_check CHECK (status IN ('accepted', 'dispatched', 'succeeded', 'failed', 'unknown', 'expired')),
    CONSTRAINT commands_idempotency_key_check CHECK (idempotency_key IS NULL OR length(idempotency_key) BETWEEN 1 AND 64),
    -- A replayed Idempotency-Key of the same user finds the original command, never a second one.
    CONSTRAINT commands_user_idempotency_key UNIQUE (user_id, idempotency_key)
);

-- Serves the history, newest first, and its keyset paging.
CREATE INDEX commands_vehicle_history_idx ON commands (vehicle_id, created_at DESC, id DESC);
-- Serves the per-user rate limit: a user's recent commands of one action.
CREATE INDEX commands_user_rate_idx ON commands (user_id, action, created_at);
-- Serve the workers' claims and sweeps, and admission's search for commands an expired lease
-- left in flight; they stay small because finished commands leave them.
CREATE INDEX commands_in_flight_idx ON commands (created_at) WHERE status IN ('accepted', 'dispatched');
CREATE INDEX commands_vehicle_in_flight_idx ON commands (vehicle_id) WHERE status IN ('accepted', 'dispatched');

CREATE TABLE command_guards (
    vehicle_id       uuid        PRIMARY KEY REFERENCES vehicles (id) ON DELETE CASCADE,
    user_id          uuid        NOT NULL,
    command_id       uuid        NOT NULL,
    lease_expires_at timestamptz NOT NULL,
    CONSTRAINT command_guards_command_id_key UNIQUE (command_id)
);

-- +goose Down
DROP TABLE command_guards;
DROP TABLE commands;
