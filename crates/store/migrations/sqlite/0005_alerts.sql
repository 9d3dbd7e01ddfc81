-- Alert rules and the alert log (issue 5, Alerts).
--
-- A rule says what to watch (`kind`), when it fires (`threshold_percent`, `window_minutes`,
-- `min_calls`, by kind) and where to send it (`webhook_url` and/or `email`). The engine's
-- memory of a rule (`firing`, `last_sent_us`, `last_value`) lives in the same row, so that a
-- restart neither repeats an alert nor forgets that one is due again.
CREATE TABLE alert_rules (
    id                INTEGER PRIMARY KEY,
    name              TEXT    NOT NULL,
    kind              TEXT    NOT NULL CHECK (kind IN ('channels', 'license', 'failed_ratio')),
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

-- One row per would-be delivery: sent, failed (with the error) or suppressed (with the
-- reason, e.g. "license locked": SPEC §3 wants locked alerts to say so in their log). No
-- foreign key on the rule: deleting a rule keeps what it sent, under its name at the time.
CREATE TABLE alert_log (
    id        INTEGER PRIMARY KEY,
    at_us     BIGINT  NOT NULL,
    rule_id   INTEGER,
    rule_name TEXT    NOT NULL,
    channel   TEXT    NOT NULL,
    what      TEXT    NOT NULL,
    outcome   TEXT    NOT NULL CHECK (outcome IN ('delivered', 'failed', 'suppressed')),
    detail    TEXT
);
