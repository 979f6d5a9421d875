-- The erasure mark for the local file database (see the PostgreSQL set).

-- +goose Up
ALTER TABLE users ADD COLUMN deletion_requested_at TIMESTAMP;

-- +goose Down
ALTER TABLE users DROP COLUMN deletion_requested_at;
