-- Account deletions for the local file database (see the PostgreSQL set). SQLite cannot alter a
-- check, so the inbox is rebuilt with the wider one; no foreign key points at it or from it.

-- +goose Up
CREATE TABLE webhook_inbox_new (
    source       TEXT      NOT NULL,
    event_id     TEXT      NOT NULL,
    event_type   TEXT      NOT NULL DEFAULT '',
    payload      BLOB      NOT NULL,
    status       TEXT      NOT NULL,
    attempts     INTEGER   NOT NULL DEFAULT 0,
    outcome      TEXT      NOT NULL DEFAULT '',
    last_error   TEXT      NOT NULL DEFAULT '',
    received_at  TIMESTAMP NOT NULL,
    available_at TIMESTAMP NOT NULL,
    finished_at  TIMESTAMP,
    PRIMARY KEY (source, event_id),
    CONSTRAINT webhook_inbox_source_check CHECK (source IN ('smartcar', 'apple', 'account')),
    CONSTRAINT webhook_inbox_status_check CHECK (status IN ('pending', 'processed', 'poison', 'failed')),
    CONSTRAINT webhook_inbox_event_id_len CHECK (length(event_id) BETWEEN 1 AND 200)
);
INSERT INTO webhook_inbox_new SELECT source, event_id, event_type, payload, status, attempts, outcome, last_error,
    received_at, available_at, finished_at FROM webhook_inbox;
DROP TABLE webhook_inbox;
ALTER TABLE webhook_inbox_new RENAME TO webhook_inbox;
CREATE INDEX webhook_inbox_due_idx ON webhook_inbox (available_at, received_at) WHERE status = 'pending';
CREATE INDEX webhook_inbox_finished_idx ON webhook_inbox (received_at) WHERE status <> 'pending';

-- +goose Down
CREATE TABLE webhook_inbox_old (
    source       TEXT      NOT NULL,
    event_id     TEXT      NOT NULL,
    event_type   TEXT      NOT NULL DEFAULT '',
    payload      BLOB      NOT NULL,
    status       TEXT      NOT NULL,
    attempts     INTEGER   NOT NULL DEFAULT 0,
    outcome      TEXT      NOT NULL DEFAULT '',
    last_error   TEXT      NOT NULL DEFAULT '',
    received_at  TIMESTAMP NOT NULL,
    available_at TIMESTAMP NOT NULL,
    finished_at  TIMESTAMP,
    PRIMARY KEY (source, event_id),
    CONSTRAINT webhook_inbox_source_check CHECK (source IN ('smartcar', 'apple')),
    CONSTRAINT webhook_inbox_status_check CHECK (status IN ('pending', 'processed', 'poison', 'failed')),
    CONSTRAINT webhook_inbox_event_id_len CHECK (length(event_id) BETWEEN 1 AND 200)
);
INSERT INTO webhook_inbox_old SELECT source, event_id, event_type, payload, status, attempts, outcome, last_error,
    received_at, available_at, finished_at FROM webhook_inbox WHERE source <> 'account';
DROP TABLE webhook_inbox;
ALTER TABLE webhook_inbox_old RENAME TO webhook_inbox;
CREATE INDEX webhook_inbox_due_idx ON webhook_inbox (available_at, received_at) WHERE status = 'pending';
CREATE INDEX webhook_inbox_finished_idx ON webhook_inbox (received_at) WHERE status <> 'pending';
