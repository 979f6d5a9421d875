-- Webhooks for the local file database; the same shape as the PostgreSQL set (see there). The
-- payload is a BLOB because a poison body need not be text; timestamps are UTC text at
-- microsecond precision (see 0001).

-- +goose Up
CREATE TABLE webhook_inbox (
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

CREATE INDEX webhook_inbox_due_idx ON webhook_inbox (available_at, received_at) WHERE status = 'pending';
CREATE INDEX webhook_inbox_finished_idx ON webhook_inbox (received_at) WHERE status <> 'pending';

CREATE INDEX vehicles_smartcar_id_idx ON vehicles (smartcar_id);

-- +goose Down
DROP INDEX vehicles_smartcar_id_idx;
DROP TABLE webhook_inbox;
