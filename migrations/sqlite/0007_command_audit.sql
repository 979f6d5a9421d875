-- The audit log of erased accounts for the local file database (see the PostgreSQL set).

-- +goose Up
CREATE TABLE command_audit (
    id                TEXT      PRIMARY KEY,
    account_pseudonym TEXT      NOT NULL,
    vehicle_pseudonym TEXT      NOT NULL,
    action            TEXT      NOT NULL,
    status            TEXT      NOT NULL,
    error_code        TEXT      NOT NULL DEFAULT '',
    created_at        TIMESTAMP NOT NULL,
    dispatched_at     TIMESTAMP,
    finished_at       TIMESTAMP,
    archived_at       TIMESTAMP NOT NULL,
    CONSTRAINT command_audit_action_check CHECK (action IN ('lock', 'unlock'))
);
CREATE INDEX command_audit_created_idx ON command_audit (created_at);

-- +goose Down
DROP TABLE command_audit;
