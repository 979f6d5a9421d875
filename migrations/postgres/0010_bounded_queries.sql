-- Bounded hot queries and retention: every query the service runs often, and every janitor's
-- delete, reads only the rows it needs through an index, so their cost does not grow with the
-- history the tables keep. Built CONCURRENTLY: the previous release keeps serving meanwhile.

-- +goose NO TRANSACTION
-- +goose Up

-- A concurrent build that failed (it waits for older transactions under the migration's
-- lock_timeout) leaves an INVALID index behind, which IF NOT EXISTS would then keep and the
-- planner never uses. A rerun drops such leftovers first (a brief lock, bounded by the same
-- timeout, and only when a build failed) and builds them afresh.
-- +goose StatementBegin
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE NOT i.indisvalid AND c.relname IN ('sessions_live_user_idx', 'sessions_revoked_at_idx',
            'sessions_idle_expires_at_idx', 'session_refresh_history_rotated_at_idx',
            'commands_vehicle_unknown_idx', 'commands_finished_created_idx')
    LOOP
        EXECUTE format('DROP INDEX %I', r.relname);
    END LOOP;
END
$$;
-- +goose StatementEnd

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
