-- A leaf no longer stores its event id (33 bytes per event): the id is read by seq from events
-- or, once the event is deleted, replaced or expired, from log_tombstones, which gets an index
-- on seq for that (see relay/src/store/log.rs). Leaves whose seq is in neither table (none are
-- expected) first get a tombstone, so that every leaf keeps its id and its hash.
CREATE INDEX log_tombstones_seq ON log_tombstones (seq);
INSERT OR IGNORE INTO log_tombstones (event_id, seq)
SELECT l.event_id, l.seq FROM log_leaves l
WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.seq = l.seq)
  AND NOT EXISTS (SELECT 1 FROM log_tombstones t WHERE t.seq = l.seq);
ALTER TABLE log_leaves DROP COLUMN event_id;
