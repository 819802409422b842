-- The event store: the postgres-es `events` and `snapshots` tables (jsonb
-- payloads) plus the columns cqrs-es never sees, and the outbox the relay
-- drains to NATS JetStream.
--
-- Gap safety: every transaction that appends events first takes one
-- transaction-scoped advisory lock (statement trigger below) and only then
-- draws `global_position` values. Appends therefore commit in position order,
-- and a row at position p is never visible before every committed row below
-- p: a reader following "position > last seen" cannot skip a slow
-- transaction's events. The lock is held from a transaction's first event
-- insert to its commit; command transactions are a few statements long.

CREATE SEQUENCE events_global_position_seq AS bigint;

CREATE TABLE events
(
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    sequence        bigint      NOT NULL CHECK (sequence >= 0),
    event_type      text        NOT NULL,
    event_version   text        NOT NULL,
    payload         jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    -- Columns below are filled by Postgres, never by cqrs-es.
    event_id        uuid        NOT NULL DEFAULT gen_random_uuid(),
    global_position bigint      NOT NULL DEFAULT nextval('events_global_position_seq'),
    recorded_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    client_id       uuid GENERATED ALWAYS AS ((metadata ->> 'client_id')::uuid) STORED,
    command_id      uuid GENERATED ALWAYS AS ((metadata ->> 'command_id')::uuid) STORED,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);
ALTER SEQUENCE events_global_position_seq OWNED BY events.global_position;

CREATE UNIQUE INDEX events_global_position_idx ON events (global_position);
CREATE UNIQUE INDEX events_event_id_idx ON events (event_id);
CREATE INDEX events_command_id_idx ON events (command_id) WHERE command_id IS NOT NULL;
CREATE INDEX events_client_position_idx ON events (client_id, global_position);

CREATE TABLE snapshots
(
    aggregate_type   text   NOT NULL,
    aggregate_id     text   NOT NULL,
    last_sequence    bigint NOT NULL CHECK (last_sequence >= 0),
    current_snapshot bigint NOT NULL CHECK (current_snapshot >= 0),
    payload          jsonb  NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);

-- What the relay has still to publish. A row exists from the commit of its
-- event until the relay has had JetStream's acknowledgement for it.
CREATE TABLE event_outbox
(
    global_position bigint PRIMARY KEY,
    enqueued_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE FUNCTION events_serialize_appends() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    -- One lock for every appender: positions are drawn after it, so commit
    -- order equals position order. Reentrant within a transaction.
    PERFORM pg_advisory_xact_lock(8675309001);
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_serialize_appends
    BEFORE INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_serialize_appends();

CREATE FUNCTION events_fill_outbox() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    INSERT INTO event_outbox (global_position) SELECT global_position FROM new_events;
    -- Wakes the relay at commit (notifications are delivered on commit only).
    PERFORM pg_notify('sextant_outbox', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_fill_outbox
    AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION events_fill_outbox();

-- The log is immutable: history is never rewritten, only appended to.
CREATE FUNCTION events_forbid_change() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    RAISE EXCEPTION 'events are immutable (% refused)', TG_OP;
END;
$$;

CREATE TRIGGER events_forbid_change
    BEFORE UPDATE OR DELETE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_forbid_change();

-- Where each projection has got to, written in the same transaction as its
-- read model.
CREATE TABLE projection_checkpoints
(
    projection text PRIMARY KEY,
    position   bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Events a projection could not apply: parked with the reason so the rest of
-- the stream goes on.
CREATE TABLE projection_parked
(
    projection      text        NOT NULL,
    global_position bigint      NOT NULL,
    event_id        uuid        NOT NULL,
    reason          text        NOT NULL,
    parked_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, global_position)
);
