-- Events, their indexed tags, and NIP-09 deletion markers (SQLite).
-- seq is the arrival sequence: AUTOINCREMENT never reuses a value, so it strictly increases
-- in commit order (SQLite has one writer at a time).
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          BLOB    NOT NULL UNIQUE,
    pubkey      BLOB    NOT NULL,
    kind        INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    dtag        TEXT,               -- '' for replaceable kinds, the d tag for addressable ones
    received_at INTEGER NOT NULL,   -- relay receive time, ms since the UNIX epoch
    raw         TEXT    NOT NULL    -- the event's JSON, served verbatim
);
CREATE INDEX events_created ON events (created_at DESC, id);
CREATE INDEX events_kind ON events (kind, created_at DESC, id);
CREATE INDEX events_author ON events (pubkey, kind, created_at DESC, id);
CREATE UNIQUE INDEX events_replaceable ON events (pubkey, kind, dtag) WHERE dtag IS NOT NULL;
CREATE INDEX events_expiring ON events (expires_at) WHERE expires_at IS NOT NULL;

-- One row per distinct (single-letter tag, value) of an event; kind and created_at are copied
-- so that `#p` + `kinds` + time range + newest-first (ties by id) is one index range scan.
CREATE TABLE tags (
    seq        INTEGER NOT NULL,
    name       TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    kind       INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    idp        INTEGER NOT NULL    -- first 8 bytes of the event id, order-preserving (see store/mod.rs)
);
CREATE INDEX tags_lookup ON tags (name, value, kind, created_at DESC, idp);
CREATE INDEX tags_seq ON tags (seq);

-- NIP-09: what an author asked to delete. target is an event id (hex) or a `kind:pubkey:d`
-- coordinate; for coordinates, versions created at or before created_at are deleted.
CREATE TABLE deletions (
    target     TEXT    NOT NULL,
    pubkey     BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (target, pubkey)
);
