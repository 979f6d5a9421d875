-- Webhooks: the inbox of verified pushed events (Smartcar webhooks, Apple server-to-server
-- notifications). A delivery is stored here before its sender gets the 2xx and is processed
-- later by whichever replica claims it, so at-least-once deliveries run once and a restart loses
-- nothing. Payloads are the verified bodies (Smartcar) or the decoded event (Apple): never a
-- signature, a token or a key. Timestamps are timestamptz, written in UTC at microsecond
-- precision.

-- +goose Up
CREATE TABLE webhook_inbox (
    source       text        NOT NULL,
    -- The sender's event id (Smartcar eventId, Apple jti), or sha256:<hex> of the body.
    event_id     text        NOT NULL,
    event_type   text        NOT NULL DEFAULT '',
    -- bytea: a poison body need not be valid UTF-8.
    payload      bytea       NOT NULL,
    status       text        NOT NULL,
    attempts     integer     NOT NULL DEFAULT 0,
    outcome      text        NOT NULL DEFAULT '',
    last_error   text        NOT NULL DEFAULT '',
    received_at  timestamptz NOT NULL,
    -- When a worker may take the event next: the end of its lease or of its retry backoff.
    available_at timestamptz NOT NULL,
    finished_at  timestamptz,
    PRIMARY KEY (source, event_id),
    CONSTRAINT webhook_inbox_source_check CHECK (source IN ('smartcar', 'apple')),
    CONSTRAINT webhook_inbox_status_check CHECK (status IN ('pending', 'processed', 'poison', 'failed')),
    CONSTRAINT webhook_inbox_event_id_len CHECK (char_length(event_id) BETWEEN 1 AND 200)
);

-- Serves the workers' claim: pending events in the order they become due.
CREATE INDEX webhook_inbox_due_idx ON webhook_inbox (available_at, received_at) WHERE status = 'pending';
-- Serves the retention sweep of final events.
CREATE INDEX webhook_inbox_finished_idx ON webhook_inbox (received_at) WHERE status <> 'pending';

-- Webhooks name vehicles by Smartcar's id, across users.
CREATE INDEX vehicles_smartcar_id_idx ON vehicles (smartcar_id);

-- +goose Down
DROP INDEX vehicles_smartcar_id_idx;
DROP TABLE webhook_inbox;
