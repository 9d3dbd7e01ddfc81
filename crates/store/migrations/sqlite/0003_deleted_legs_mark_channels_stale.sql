-- Deleting CDRs (the documented way out of a lock caused by miscounted legs) must change the
-- channel figures at the next update, however the rows were deleted: by sipmeter or by hand
-- in the sqlite3 shell.
CREATE TRIGGER legs_deleted_mark_channels_stale AFTER DELETE ON legs
BEGIN
    INSERT INTO channel_dirty (from_us, to_us) VALUES (OLD.start_us, OLD.end_us);
END;
