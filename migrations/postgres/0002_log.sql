-- The verifiable log (PostgreSQL): one leaf per stored event in arrival order, the hash of
-- every perfect subtree, and the signed checkpoints. Rows here are never updated or deleted.
-- Appends happen under the writers' advisory lock, so several processes share one log.
CREATE TABLE log_leaves (
    idx         BIGINT PRIMARY KEY,    -- leaf index, from 0
    event_id    BYTEA  NOT NULL,
    received_at BIGINT NOT NULL,       -- ms since the UNIX epoch, part of the leaf hash
    seq         BIGINT NOT NULL        -- the event's arrival sequence number
);
CREATE INDEX log_leaves_seq ON log_leaves (seq);

-- A leaf is found from its event id through events.id -> seq (no random-key index on the
-- leaves); events that were deleted, replaced or expired keep their id -> seq here.
CREATE TABLE log_tombstones (
    event_id BYTEA  NOT NULL,
    seq      BIGINT NOT NULL,
    PRIMARY KEY (event_id, seq)
);
CREATE FUNCTION events_tombstone() RETURNS trigger AS $$
BEGIN
    INSERT INTO log_tombstones (event_id, seq) VALUES (OLD.id, OLD.seq) ON CONFLICT DO NOTHING;
    RETURN OLD;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER events_tombstone AFTER DELETE ON events FOR EACH ROW EXECUTE FUNCTION events_tombstone();

-- Node (level, idx) covers leaves [idx << level, (idx + 1) << level), for level >= 1; leaf
-- hashes (level 0) are recomputed from log_leaves.

CREATE TABLE log_nodes (
    level BIGINT   NOT NULL,
    idx   BIGINT   NOT NULL,
    hash  BYTEA    NOT NULL,
    PRIMARY KEY (level, idx)
);

CREATE TABLE checkpoints (
    tree_size BIGINT PRIMARY KEY,
    root      BYTEA  NOT NULL,
    timestamp BIGINT NOT NULL,
    event     TEXT   NOT NULL,
    anchor    TEXT
);
