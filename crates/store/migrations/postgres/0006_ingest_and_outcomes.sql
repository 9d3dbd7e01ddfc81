-- Cheaper inserts, number filters, outcome buckets (see ../sqlite/0006_ingest_and_outcomes.sql).

DROP INDEX legs_end_us;
DROP INDEX legs_caller;
DROP INDEX legs_called;
-- COLLATE "C": the number filters are prefix ranges compared bytewise, whatever the
-- database's collation.
CREATE INDEX legs_caller_start ON legs (caller COLLATE "C", start_us);
CREATE INDEX legs_called_start ON legs (called COLLATE "C", start_us);

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

CREATE TABLE leg_outcome_stale (
    bucket_us BIGINT PRIMARY KEY
);

CREATE FUNCTION legs_changed_mark_outcomes_stale() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO leg_outcome_stale (bucket_us)
    VALUES (OLD.start_us - ((OLD.start_us % 900000000) + 900000000) % 900000000)
    ON CONFLICT DO NOTHING;
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO leg_outcome_stale (bucket_us)
        VALUES (NEW.start_us - ((NEW.start_us % 900000000) + 900000000) % 900000000)
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER legs_deleted_mark_outcomes_stale AFTER DELETE ON legs
FOR EACH ROW EXECUTE FUNCTION legs_changed_mark_outcomes_stale();

CREATE TRIGGER legs_updated_mark_outcomes_stale
AFTER UPDATE OF start_us, answer_us, end_us, last_response, last_response_text, end_reason ON legs
FOR EACH ROW EXECUTE FUNCTION legs_changed_mark_outcomes_stale();

INSERT INTO leg_outcome_buckets
    (bucket_us, code, answered, end_reason, legs, connect_us, reason_text)
SELECT start_us - ((start_us % 900000000) + 900000000) % 900000000,
       COALESCE(last_response, -1),
       answer_us IS NOT NULL,
       end_reason,
       COUNT(*),
       SUM(CASE WHEN answer_us IS NULL THEN 0 ELSE GREATEST(end_us - answer_us, 0) END),
       MIN(last_response_text COLLATE "C")
FROM legs
GROUP BY 1, 2, 3, 4;
