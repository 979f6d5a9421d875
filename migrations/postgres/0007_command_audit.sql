-- The audit log of erased accounts (SPEC §3): account deletion moves the account's lock and
-- unlock commands here with the account and the vehicle replaced by random pseudonyms, so what
-- was done to a car and when survives while no row names a person or a car. No foreign keys:
-- an entry outlives everything it once referred to.

-- +goose Up
CREATE TABLE command_audit (
    id                uuid        PRIMARY KEY,
    account_pseudonym uuid        NOT NULL,
    vehicle_pseudonym uuid        NOT NULL,
    action            text        NOT NULL,
    status            text        NOT NULL,
    error_code        text        NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL,
    dispatched_at     timestamptz,
    finished_at       timestamptz,
    archived_at       timestamptz NOT NULL,
    CONSTRAINT command_audit_action_check CHECK (action IN ('lock', 'unlock'))
);
CREATE INDEX command_audit_created_idx ON command_audit (created_at);

-- +goose Down
DROP TABLE command_audit;
