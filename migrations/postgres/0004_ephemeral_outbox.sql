-- Ephemeral events are never stored, but with several relay processes on one database they
-- must reach the other processes' subscribers. Small ones travel in the NOTIFY payload (8000
-- bytes at most); larger ones pass through this table, which is purged after a minute.
CREATE TABLE ephemeral_outbox (
    id  BIGSERIAL PRIMARY KEY,
    raw TEXT   NOT NULL,
    at  BIGINT NOT NULL      -- ms since the UNIX epoch
);
