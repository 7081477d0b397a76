-- Events, their indexed tags, and NIP-09 deletion markers (PostgreSQL).
-- seq is the arrival sequence. Writers hold a transaction-level advisory lock while they
-- insert, so sequence values are taken and committed in one order even with several relay
-- processes on this database.
CREATE TABLE events (
    seq         BIGSERIAL PRIMARY KEY,
    id          BYTEA  NOT NULL UNIQUE,
    pubkey      BYTEA  NOT NULL,
    kind        BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    dtag        TEXT,               -- '' for replaceable kinds, the d tag for addressable ones
    received_at BIGINT NOT NULL,    -- relay receive time, ms since the UNIX epoch
    raw         TEXT   NOT NULL     -- the event's JSON, served verbatim
);
CREATE INDEX events_created ON events (created_at DESC, id);
CREATE INDEX events_kind ON events (kind, created_at DESC, id);
CREATE INDEX events_author ON events (pubkey, kind, created_at DESC, id);
CREATE UNIQUE INDEX events_replaceable ON events (pubkey, kind, dtag) WHERE dtag IS NOT NULL;
CREATE INDEX events_expiring ON events (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE tags (
    seq        BIGINT NOT NULL,
    name       TEXT   NOT NULL,
    value      TEXT   NOT NULL,
    kind       BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    idp        BIGINT NOT NULL     -- first 8 bytes of the event id, order-preserving (see store/mod.rs)
);
CREATE INDEX tags_lookup ON tags (name, value, kind, created_at DESC, idp);
CREATE INDEX tags_seq ON tags (seq);

CREATE TABLE deletions (
    target     TEXT   NOT NULL,
    pubkey     BYTEA  NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (target, pubkey)
);
