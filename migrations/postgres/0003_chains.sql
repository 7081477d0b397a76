-- Session chains: the newest accepted event of each (author, `s` tag) chain. An event with a
-- `["prev", <id>]` tag is accepted only if <id> is the current head of its chain.
CREATE TABLE chain_heads (
    pubkey  BYTEA NOT NULL,
    session TEXT  NOT NULL,
    head    BYTEA NOT NULL,
    PRIMARY KEY (pubkey, session)
);
