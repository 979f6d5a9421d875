-- Pending links for the local file database; the same shape as the PostgreSQL set (see there).
-- Hashes are 32-byte blobs, ids canonical UUID text, timestamps UTC text at microsecond precision
-- (see 0001).

-- +goose Up
CREATE TABLE pending_links (
    hash        BLOB      PRIMARY KEY,
    user_id     TEXT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sealed_code TEXT      NOT NULL,
    expires_at  TIMESTAMP NOT NULL,
    CONSTRAINT pending_links_hash_len CHECK (length(hash) = 32),
    CONSTRAINT pending_links_sealed_code_check CHECK (sealed_code <> '')
);

CREATE INDEX pending_links_expires_at_idx ON pending_links (expires_at);
CREATE INDEX pending_links_user_id_idx ON pending_links (user_id);

-- +goose Down
DROP TABLE pending_links;
