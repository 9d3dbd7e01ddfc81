-- Remote sensors (issue 7): a sensor row (the id its legs carry) gets its own bearer token,
-- kept only as a SHA-256 hash (the token is 256 random bits, so a slow password hash would buy
-- nothing and cost every batch). Rows registered on the fly by imports have no token. A
-- revoked sensor keeps its row, so its legs and history (last seen, legs received) stay.
-- Last seen, version, legs received and the spool backlog are what Settings > Sensors shows.

ALTER TABLE sensors ADD COLUMN token_hash TEXT;
ALTER TABLE sensors ADD COLUMN revoked_us BIGINT;
ALTER TABLE sensors ADD COLUMN last_seen_us BIGINT;
ALTER TABLE sensors ADD COLUMN version TEXT;
ALTER TABLE sensors ADD COLUMN legs_received BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sensors ADD COLUMN spool_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sensors ADD COLUMN spool_batches BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sensors ADD COLUMN spool_full BOOLEAN NOT NULL DEFAULT FALSE;

CREATE UNIQUE INDEX sensors_token_hash ON sensors (token_hash) WHERE token_hash IS NOT NULL;
