-- Channel statistics (SPEC §2): per-minute figures of channels(t), and the time ranges whose
-- figures are stale because legs arrived for them since the last update.
--
-- Minutes are UTC minutes; every zone in use has a whole-minute offset, so local hours and
-- days of any license time zone are whole sets of these rows.

CREATE TABLE channel_minutes (
    minute_us  BIGINT PRIMARY KEY,
    peak       BIGINT NOT NULL,
    peak_at_us BIGINT NOT NULL,
    -- Integral of channels(t) over the covered part of the minute, channel·µs.
    integral   BIGINT NOT NULL,
    covered_us BIGINT NOT NULL
);

-- What a channel recompute reads of a leg, in start order: a covering index, so the scan of
-- a day never touches the wide leg rows. It starts with start_us and so replaces that index.
DROP INDEX legs_start_us;
CREATE INDEX legs_channels ON legs (start_us, end_us, answer_us, caller, called);

-- Appended in the same transaction as the legs that make them stale; consumed by the update.
CREATE TABLE channel_dirty (
    id      INTEGER PRIMARY KEY,
    from_us BIGINT NOT NULL,
    to_us   BIGINT NOT NULL
);

-- Small facts the store keeps about itself: the longest leg ever stored (bounds the
-- "legs active at t" index scans) and the active mode the minute rows were computed with.
CREATE TABLE store_meta (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);

-- The legs already stored are stale for the channel statistics: all of their time range.
INSERT INTO channel_dirty (from_us, to_us)
SELECT MIN(start_us), MAX(end_us) FROM legs HAVING COUNT(*) > 0;
INSERT INTO store_meta (name, value)
SELECT 'max_leg_us', MAX(end_us - start_us) FROM legs HAVING COUNT(*) > 0;
