-- The verifiable log (SQLite): one leaf per stored event in arrival order, the hash of every
-- perfect subtree, and the signed checkpoints. Rows here are never updated or deleted: when an
-- event is deleted (NIP-09), expires (NIP-40) or vanishes (NIP-62), its leaf stays.
CREATE TABLE log_leaves (
    idx         INTEGER PRIMARY KEY,   -- leaf index, from 0
    event_id    BLOB    NOT NULL,
    received_at INTEGER NOT NULL,      -- ms since the UNIX epoch, part of the leaf hash
    seq         INTEGER NOT NULL       -- the event's arrival sequence number
);
CREATE INDEX log_leaves_seq ON log_leaves (seq);

-- A leaf is found from its event id through events.id -> seq (no random-key index on the
-- leaves, which would cost every append a random page write); events that were deleted,
-- replaced or expired keep their id -> seq here.
CREATE TABLE log_tombstones (
    event_id BLOB    NOT NULL,
    seq      INTEGER NOT NULL,
    PRIMARY KEY (event_id, seq)
) WITHOUT ROWID;
CREATE TRIGGER events_tombstone AFTER DELETE ON events BEGIN
    INSERT OR IGNORE INTO log_tombstones (event_id, seq) VALUES (old.id, old.seq);
END;

-- Node (level, idx) covers leaves [idx << level, (idx + 1) << level), for level >= 1; leaf
-- hashes (level 0) are recomputed from log_leaves.
CREATE TABLE log_nodes (
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB    NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;

CREATE TABLE checkpoints (
    tree_size INTEGER PRIMARY KEY,
    root      BLOB    NOT NULL,
    timestamp INTEGER NOT NULL,        -- unix seconds
    event     TEXT    NOT NULL,        -- the signed kind-1574 checkpoint event
    anchor    TEXT                     -- Solana transaction signature, when anchored
);
