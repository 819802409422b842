-- The `reports` projection's per-send rows become narrow and insert-only:
-- `report_sends` keeps each send's keys, and the first time each outcome
-- followed a send moves to `report_outcomes` (its primary key refuses a
-- second of the same kind). Updating a wide row per outcome, and an index
-- of sends by client that only a time zone change reads, cost batch ingest
-- more than the rollups themselves.
CREATE TABLE report_outcomes
(
    send_id     uuid        NOT NULL,
    metric      text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (send_id, metric)
);

INSERT INTO report_outcomes (send_id, metric, occurred_at)
SELECT s.send_id, m.metric, m.occurred_at
FROM report_sends s
CROSS JOIN LATERAL (VALUES ('delivered', s.delivered_at), ('opened', s.opened_at),
                           ('clicked', s.clicked_at), ('replied', s.replied_at),
                           ('positive', s.positive_at), ('meetings', s.meetings_at),
                           ('conversions', s.conversions_at), ('bounced', s.bounced_at),
                           ('hard_bounced', s.hard_bounced_at),
                           ('unsubscribed', s.unsubscribed_at),
                           ('complained', s.complained_at)) AS m(metric, occurred_at)
WHERE m.occurred_at IS NOT NULL;

ALTER TABLE report_sends
    DROP COLUMN delivered_at,
    DROP COLUMN opened_at,
    DROP COLUMN clicked_at,
    DROP COLUMN replied_at,
    DROP COLUMN positive_at,
    DROP COLUMN meetings_at,
    DROP COLUMN conversions_at,
    DROP COLUMN bounced_at,
    DROP COLUMN hard_bounced_at,
    DROP COLUMN unsubscribed_at,
    DROP COLUMN complained_at;

DROP INDEX IF EXISTS report_sends_client_idx;
