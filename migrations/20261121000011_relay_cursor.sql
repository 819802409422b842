-- The relay keeps a cursor (the last position it has on the stream) instead
-- of an outbox row per event. Appends commit in position order (the
-- advisory lock of events_serialize_appends), so "every committed event
-- after the cursor" is exactly what is still to publish: no row has to be
-- inserted with each event and deleted once published, which cost two
-- writes and a vacuum's worth of dead rows per event.
CREATE TABLE relay_cursor
(
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    position  bigint NOT NULL CHECK (position >= 0)
);

-- Where the outbox said the relay was: before its oldest row, or at the
-- head when it was empty.
INSERT INTO relay_cursor (position)
SELECT COALESCE((SELECT min(global_position) - 1 FROM event_outbox),
                (SELECT max(global_position) FROM events),
                0);

DROP TRIGGER events_fill_outbox ON events;
DROP FUNCTION events_fill_outbox();
DROP TABLE event_outbox;

CREATE FUNCTION events_notify_relay() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    -- Wakes the relay at commit (notifications are delivered on commit only).
    PERFORM pg_notify('sextant_outbox', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_notify_relay
    AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_notify_relay();

-- What is still to publish, as the outbox table used to list it: for
-- /readyz, the relay's metrics and the tests.
CREATE VIEW event_outbox AS
SELECT e.global_position, e.recorded_at AS enqueued_at
FROM events e
WHERE e.global_position > (SELECT position FROM relay_cursor);
