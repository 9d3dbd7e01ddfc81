-- Remote sensors: tokens and what Settings > Sensors shows (see ../sqlite/0007_sensors.sql).
ALTER TABLE sensors ADD COLUMN token_hash TEXT;
ALTER TABLE sensors ADD COLUMN revoked_us BIGINT;
ALTER TABLE sensors ADD COLUMN last_seen_us BIGINT;
ALTER TABLE sensors ADD COLUMN version TEXT;
ALTER TABLE sensors ADD COLUMN legs_received BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sensors ADD COLUMN spool_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sensors ADD COLUMN spool_batches BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sensors ADD COLUMN spool_full BOOLEAN NOT NULL DEFAULT FALSE;

CREATE UNIQUE INDEX sensors_token_hash ON sensors (token_hash) WHERE token_hash IS NOT NULL;
