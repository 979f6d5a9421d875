-- Pending links: a Connect callback no longer links a vehicle by itself, because it is
-- unauthenticated and may run in a browser other than the owner's (login CSRF). It leaves the
-- Smartcar authorization code here, sealed (AES-256-GCM) for the user who started the flow, until
-- that user's app confirms with its own session. Rows are known only by the SHA-256 of the link
-- token, live 5 minutes and are consumed once. Timestamps are timestamptz, written in UTC at
-- microsecond precision.

-- +goose Up
CREATE TABLE pending_links (
    hash        bytea       PRIMARY KEY,
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sealed_code text        NOT NULL,
    expires_at  timestamptz NOT NULL,
    CONSTRAINT pending_links_hash_len CHECK (octet_length(hash) = 32),
    CONSTRAINT pending_links_sealed_code_check CHECK (sealed_code <> '')
);

-- Serves the sweep of expired links.
CREATE INDEX pending_links_expires_at_idx ON pending_links (expires_at);
-- Serves the cascade from users.
CREATE INDEX pending_links_user_id_idx ON pending_links (user_id);

-- +goose Down
DROP TABLE pending_links;
