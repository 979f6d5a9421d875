-- Account deletions: DELETE /v1/me records its request in the webhook inbox (source 'account',
-- keyed by the user id) so that the inbox worker finishes an erasure an upstream call
-- interrupted, with the same retries, backoff and forced local deletion as Apple's
-- account-delete notifications. Only the check on source changes.

-- +goose Up
ALTER TABLE webhook_inbox DROP CONSTRAINT webhook_inbox_source_check;
ALTER TABLE webhook_inbox ADD CONSTRAINT webhook_inbox_source_check CHECK (source IN ('smartcar', 'apple', 'account'));

-- +goose Down
DELETE FROM webhook_inbox WHERE source = 'account';
ALTER TABLE webhook_inbox DROP CONSTRAINT webhook_inbox_source_check;
ALTER TABLE webhook_inbox ADD CONSTRAINT webhook_inbox_source_check CHECK (source IN ('smartcar', 'apple'));
