-- The verifiable log (SQLite): one leaf per stored event in arrival order, the hash of every
-- perfect subtree, and the signed checkpoints. Rows here are never updated or deleted: when an
-- event is deleted (NIP-09), expires (NIP-40) or vanishes (NIP-62), its leaf stays.
CREATE TABLE log_leaves (
    idx         INTEGER PRIMARY KEY,   -- leaf index, from 0
    event_id    BLOB    NOT NULL,
    received_at INTEGER NOT NULL,      -- ms since the UNIX epoch, part of the leaf hash
    seq         INTEGER NOT NULL       -- the event's arrival sequence number
);
CREATE INDEX log_leaves_event ON log_leaves (event_id);
CREATE INDEX log_leaves_seq ON log_leaves (seq);

-- Node (level, idx) covers leaves [idx << level, (idx + 1) << level).
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
