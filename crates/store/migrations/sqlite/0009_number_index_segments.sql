-- Issue 7: number indexes that do not slow ingest down as the table grows.
--
-- Callers and called numbers arrive in random order, so each new leg went to a random leaf of
-- `legs_caller_start` / `legs_called_start`. Every batch then dirtied most leaves of both
-- indexes and the commit wrote them all to the WAL again: at 500 000 legs the two indexes cut
-- the insert rate from 133 000 to 36 000 legs/s, and it fell further with every million.
--
-- Keyed first by the leg's segment (`id >> 16`, 65 536 consecutive legs), a new leg lands in
-- the newest segment's part of the index only: a few hundred leaves that stay in the cache and
-- are written once per batch, whatever the table's size. A number lookup seeks once per
-- segment (`(id >> 16) IN (...)`, a few hundred seeks at ten million legs); sorting by a number
-- merges the segments' ordered runs (crates/store/src/cdr_query.rs).
DROP INDEX legs_caller_start;
DROP INDEX legs_called_start;
CREATE INDEX legs_caller_seg ON legs (id >> 16, caller, start_us);
CREATE INDEX legs_called_seg ON legs (id >> 16, called, start_us);
