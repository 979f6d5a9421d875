-- Bounded hot queries and retention for the local file database (see the PostgreSQL set).

-- +goose Up
CREATE INDEX sessions_live_user_idx ON sessions (user_id, created_at DESC, id DESC) WHERE revoked_at IS NULL;
CREATE INDEX sessions_revoked_at_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX sessions_idle_expires_at_idx ON sessions (idle_expires_at) WHERE revoked_at IS NULL;
CREATE INDEX session_refresh_history_rotated_at_idx ON session_refresh_history (rotated_at);
CREATE INDEX commands_vehicle_unknown_idx ON commands (vehicle_id) WHERE status = 'unknown';
CREATE INDEX commands_finished_created_idx ON commands (created_at) WHERE status NOT IN ('accepted', 'dispatched');

-- +goose Down
DROP INDEX commands_finished_created_idx;
DROP INDEX commands_vehicle_unknown_idx;
DROP INDEX session_refresh_history_rotated_at_idx;
DROP INDEX sessions_idle_expires_at_idx;
DROP INDEX sessions_revoked_at_idx;
DROP INDEX sessions_live_user_idx;
