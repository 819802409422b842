-- Which event store this database is. The relay and the projectors stamp it
-- on the JetStream stream they use (in the stream's description: stream metadata needs nats-server 2.10) and
-- refuse a stream stamped by another store: a stream shared by two
-- databases would mix their positions, and the relay's start-up sync (drop
-- what the stream already holds) would drop events that were never sent.
CREATE TABLE event_store_identity
(
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    store_id  uuid NOT NULL DEFAULT gen_random_uuid()
);
INSERT INTO event_store_identity DEFAULT VALUES;
