-- Deleting CDRs, by sipmeter or by hand in psql, makes their time range stale for the
-- channel figures (see ../sqlite/0003_deleted_legs_mark_channels_stale.sql).
CREATE FUNCTION legs_deleted_mark_channels_stale() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO channel_dirty (from_us, to_us) VALUES (OLD.start_us, OLD.end_us);
    RETURN NULL;
END $$;

CREATE TRIGGER legs_deleted_mark_channels_stale AFTER DELETE ON legs
FOR EACH ROW EXECUTE FUNCTION legs_deleted_mark_channels_stale();
