-- An account whose erasure has started (DELETE /v1/me, Apple's account-delete) is marked, so that
-- nobody signs in to it while an upstream is still being told; the mark goes with the row.

-- +goose Up
ALTER TABLE users ADD COLUMN deletion_requested_at timestamptz;

-- +goose Down
ALTER TABLE users DROP COLUMN deletion_requested_at;
