-- The verifiable log (PostgreSQL): one leaf per stored event in arrival order, the hash of
-- every perfect subtree, and the signed checkpoints. Rows here are never updated or deleted.
-- Appends happen under the writers' advisory lock, so several processes share one log.
CREATE TABLE log_leaves (
    idx         BIGINT PRIMARY KEY,    -- leaf index, from 0
    event_id    BYTEA  NOT NULL,
    received_at BIGINT NOT NULL,       -- ms since the UNIX epoch, part of the leaf hash
    seq         BIGINT NOT NULL        -- the event's arrival sequence number
);
CREATE INDEX log_leaves_event ON log_leaves (event_id);
CREATE INDEX log_leaves_seq ON log_leaves (seq);

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
