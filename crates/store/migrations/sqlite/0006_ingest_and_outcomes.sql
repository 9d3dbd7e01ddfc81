-- Issue 5 and 7: cheaper inserts, fast number filters, a daily report that does not read legs.

-- Nothing reads legs by end time alone (the channel scans bound end_us after a range on
-- start_us), so this index only cost every insert a random B-tree write.
DROP INDEX legs_end_us;

-- Number filters of the CDR list: a prefix range on the number, then the start time, so the
-- legs of one number (or of a narrow prefix) come out of the index already in start order and
-- a page of them is found without reading, let alone sorting, every leg of that number.
DROP INDEX legs_caller;
DROP INDEX legs_called;
CREATE INDEX legs_caller_start ON legs (caller, start_us);
CREATE INDEX legs_called_start ON legs (called, start_us);

-- The daily report's outcome groups, per 15-minute bucket of start time (UTC). Every time
-- zone offset in use is a multiple of 15 minutes, so any local day is a whole set of buckets;
-- a day is ~100 buckets of a few groups instead of a million legs. Maintained by the insert
-- transaction (the batch is aggregated in Rust and upserted, a few rows per batch).
-- `code` is the final response code, -1 for none (a key column must not be NULL, or the
-- upsert would never find the row). `reason_text` is the smallest reason phrase of the group.
CREATE TABLE leg_outcome_buckets (
    bucket_us   BIGINT  NOT NULL,
    code        INTEGER NOT NULL,
    answered    BOOLEAN NOT NULL,
    end_reason  TEXT    NOT NULL,
    legs        BIGINT  NOT NULL,
    connect_us  BIGINT  NOT NULL,
    reason_text TEXT,
    PRIMARY KEY (bucket_us, code, answered, end_reason)
);

-- Buckets whose rows no longer match the legs because legs were deleted or edited (by
-- sipmeter or by hand in the sqlite3 shell). Readers take a stale bucket from the legs; the
-- next insert transaction rebuilds it. A trigger per row is fine here: deletes are rare, and
-- it only records the bucket (the smallest reason phrase cannot be "decremented").
CREATE TABLE leg_outcome_stale (
    bucket_us BIGINT PRIMARY KEY
);

CREATE TRIGGER legs_deleted_mark_outcomes_stale AFTER DELETE ON legs
BEGIN
    INSERT OR IGNORE INTO leg_outcome_stale (bucket_us)
    VALUES (OLD.start_us - ((OLD.start_us % 900000000) + 900000000) % 900000000);
END;

CREATE TRIGGER legs_updated_mark_outcomes_stale
AFTER UPDATE OF start_us, answer_us, end_us, last_response, last_response_text, end_reason ON legs
BEGIN
    INSERT OR IGNORE INTO leg_outcome_stale (bucket_us)
    VALUES (OLD.start_us - ((OLD.start_us % 900000000) + 900000000) % 900000000);
    INSERT OR IGNORE INTO leg_outcome_stale (bucket_us)
    VALUES (NEW.start_us - ((NEW.start_us % 900000000) + 900000000) % 900000000);
END;

-- Backfill from the legs already stored (one GROUP BY over all of them, once).
INSERT INTO leg_outcome_buckets
    (bucket_us, code, answered, end_reason, legs, connect_us, reason_text)
SELECT start_us - ((start_us % 900000000) + 900000000) % 900000000,
       COALESCE(last_response, -1),
       answer_us IS NOT NULL,
       end_reason,
       COUNT(*),
       SUM(CASE WHEN answer_us IS NULL THEN 0 ELSE MAX(end_us - answer_us, 0) END),
       MIN(last_response_text)
FROM legs
GROUP BY 1, 2, 3, 4;
