-- Read model of the `alerts` projection: one row per alert (one episode of
-- a client's condition), open until resolved. `raised_position` is the
-- position of its `alert_raised` event, the lists' keyset cursor;
-- `position` the last event applied to the row.
CREATE TABLE alerts_view
(
    alert_id            uuid PRIMARY KEY,
    client_id           uuid        NOT NULL,
    condition_id        uuid        NOT NULL,
    condition           text        NOT NULL,
    condition_key       text        NOT NULL,
    subject             text        NOT NULL,
    episode             integer     NOT NULL,
    status              text        NOT NULL,
    evidence            jsonb       NOT NULL,
    raised_at           timestamptz NOT NULL,
    raised_position     bigint      NOT NULL,
    resolved_at         timestamptz,
    resolution_evidence jsonb,
    acknowledged_at     timestamptz,
    acknowledged_by     text,
    acknowledgement     text,
    position            bigint      NOT NULL
);
CREATE INDEX alerts_view_client_idx ON alerts_view (client_id, raised_position);
CREATE INDEX alerts_view_open_idx ON alerts_view (client_id) WHERE status = 'open';
CREATE INDEX alerts_view_raised_idx ON alerts_view (raised_position);
