-- Weekly report delivery.
--
-- Who a client's weekly report is e-mailed to (the `clients` projection;
-- none until set, which is also what replaying older events gives).
ALTER TABLE clients_view
    ADD COLUMN report_recipients text[] NOT NULL DEFAULT '{}';

-- The publisher finds each client's latest published week, and the weeks
-- already published, without scanning other events.
CREATE INDEX events_report_published_idx ON events (client_id, (payload ->> 'week'))
    WHERE aggregate_type = 'report' AND event_type = 'report_published';

-- Read model of the `report_deliveries` projection: one row per published
-- client-week, with its delivery as far as it went. `published_position`
-- is the position of its `report_published` event, the list's keyset
-- cursor; `position` the last event applied to the row.
CREATE TABLE report_deliveries_view
(
    report_id          uuid PRIMARY KEY,
    client_id          uuid        NOT NULL,
    week               text        NOT NULL,
    starts_on          date        NOT NULL,
    ends_on            date        NOT NULL,
    published_at       timestamptz NOT NULL,
    published_position bigint      NOT NULL,
    summary            jsonb       NOT NULL,
    status             text        NOT NULL,
    attempts           integer     NOT NULL DEFAULT 0,
    recipients         integer,
    last_error         text,
    last_failed_at     timestamptz,
    delivered_at       timestamptz,
    position           bigint      NOT NULL
);
CREATE INDEX report_deliveries_view_client_idx
    ON report_deliveries_view (client_id, published_position);
