-- Bounded hot queries and retention: every query the service runs often, and every janitor's
-- delete, reads only the rows it needs through an index, so their cost does not grow with the
-- history the tables keep. Built CONCURRENTLY: the previous release keeps serving meanwhile.

-- +goose NO TRANSACTION
-- +goose Up

-- Sign-in and GET /v1/me/sessions read only a user's live sessions, newest first.
CREATE INDEX CONCURRENTLY IF NOT EXISTS sessions_live_user_idx ON sessions (user_id, created_at DESC, id DESC) WHERE revoked_at IS NULL;
-- Retention of ended sessions: revoked ones by when they were revoked, the rest by idle expiry
-- (which never passes the absolute one).
CREATE INDEX CONCURRENTLY IF NOT EXISTS sessions_revoked_at_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS sessions_idle_expires_at_idx ON sessions (idle_expires_at) WHERE revoked_at IS NULL;
-- Retention of rotated refresh hashes.
CREATE INDEX CONCURRENTLY IF NOT EXISTS session_refresh_history_rotated_at_idx ON session_refresh_history (rotated_at);
-- Every lock state a webhook applies settles the vehicle's unknown commands: a few rows, found
-- without reading the vehicle's history.
CREATE INDEX CONCURRENTLY IF NOT EXISTS commands_vehicle_unknown_idx ON commands (vehicle_id) WHERE status = 'unknown';
-- Retention of finished commands, oldest first.
CREATE INDEX CONCURRENTLY IF NOT EXISTS commands_finished_created_idx ON commands (created_at) WHERE status NOT IN ('accepted', 'dispatched');

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS commands_finished_created_idx;
DROP INDEX CONCURRENTLY IF EXISTS commands_vehicle_unknown_idx;
DROP INDEX CONCURRENTLY IF EXISTS session_refresh_history_rotated_at_idx;
DROP INDEX CONCURRENTLY IF EXISTS sessions_idle_expires_at_idx;
DROP INDEX CONCURRENTLY IF EXISTS sessions_revoked_at_idx;
DROP INDEX CONCURRENTLY IF EXISTS sessions_live_user_idx;
