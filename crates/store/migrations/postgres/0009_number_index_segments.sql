-- Issue 7 (see ../sqlite/0009_number_index_segments.sql). Nothing to change here: `legs` is
-- partitioned by day and its number indexes are per partition, so new legs already land in a
-- small, recent part of each index. The migration exists so that both backends report the
-- same schema version.
SELECT 1;
