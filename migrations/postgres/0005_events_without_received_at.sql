-- The receive time of an event is part of its log leaf (log_leaves.received_at); the copy in
-- events was never read. Relays of earlier versions cannot write to this database any more.
ALTER TABLE events DROP COLUMN received_at;
