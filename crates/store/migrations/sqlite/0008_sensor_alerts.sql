-- Alert rules of kind `sensor` (issue 7: a full sensor spool or a silent sensor is an
-- alerted error). SQLite cannot change a CHECK constraint in place, so the table is rebuilt
-- with the same columns and rows; the engine's memory of each rule is kept.
CREATE TABLE alert_rules_new (
    id                INTEGER PRIMARY KEY,
    name              TEXT    NOT NULL,
    kind              TEXT    NOT NULL CHECK (kind IN ('channels', 'license', 'failed_ratio', 'sensor')),
    enabled           INTEGER NOT NULL DEFAULT 1,
    threshold_percent REAL    NOT NULL DEFAULT 0,
    window_minutes    INTEGER NOT NULL DEFAULT 5,
    min_calls         INTEGER NOT NULL DEFAULT 0,
    webhook_url       TEXT,
    email             TEXT,
    renotify_minutes  INTEGER NOT NULL DEFAULT 60,
    created_us        BIGINT  NOT NULL,
    firing            INTEGER NOT NULL DEFAULT 0,
    last_sent_us      BIGINT,
    last_value        TEXT
);
INSERT INTO alert_rules_new
    SELECT id, name, kind, enabled, threshold_percent, window_minutes, min_calls, webhook_url,
           email, renotify_minutes, created_us, firing, last_sent_us, last_value
    FROM alert_rules;
DROP TABLE alert_rules;
ALTER TABLE alert_rules_new RENAME TO alert_rules;
