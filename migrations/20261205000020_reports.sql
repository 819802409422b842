-- Read models of the `reports` projection: weekly and daily rollups per
-- client, in the client's time zone, overall (`dim` = 'all', `value` = '')
-- and by channel, campaign, agent, context version, provider and sending
-- resource. `basis` = 'cohort' counts each outcome in the period of its
-- send, whenever it arrived; 'activity' counts it in the period it
-- happened. `sends` is the same on both. Each outcome counts once per send
-- (its first report).
CREATE TABLE report_rollups
(
    client_id    uuid   NOT NULL,
    grain        text   NOT NULL, -- 'week' (period = its local Monday) or 'day'
    basis        text   NOT NULL,
    period       date   NOT NULL,
    dim          text   NOT NULL,
    value        text   NOT NULL,
    sends        bigint NOT NULL DEFAULT 0,
    delivered    bigint NOT NULL DEFAULT 0,
    opened       bigint NOT NULL DEFAULT 0,
    clicked      bigint NOT NULL DEFAULT 0,
    replied      bigint NOT NULL DEFAULT 0,
    positive     bigint NOT NULL DEFAULT 0,
    meetings     bigint NOT NULL DEFAULT 0,
    conversions  bigint NOT NULL DEFAULT 0,
    bounced      bigint NOT NULL DEFAULT 0,
    hard_bounced bigint NOT NULL DEFAULT 0,
    unsubscribed bigint NOT NULL DEFAULT 0,
    complained   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (client_id, grain, basis, period, dim, value)
);
-- The platform report reads every client's overall row of a period.
CREATE INDEX report_rollups_overall_idx ON report_rollups (grain, basis, period) WHERE dim = 'all';

-- Each send's period keys and the first time each outcome followed it: an
-- outcome is counted under its send's keys, and a client's rollups are
-- rebuilt from these rows when its time zone changes. No lead data.
CREATE TABLE report_sends
(
    send_id         uuid PRIMARY KEY,
    client_id       uuid        NOT NULL,
    sent_at         timestamptz NOT NULL,
    channel         text        NOT NULL,
    campaign        text        NOT NULL,
    agent           text        NOT NULL,
    context_version text        NOT NULL,
    provider        text        NOT NULL,
    resource        text        NOT NULL,
    delivered_at    timestamptz,
    opened_at       timestamptz,
    clicked_at      timestamptz,
    replied_at      timestamptz,
    positive_at     timestamptz,
    meetings_at     timestamptz,
    conversions_at  timestamptz,
    bounced_at      timestamptz,
    hard_bounced_at timestamptz,
    unsubscribed_at timestamptz,
    complained_at   timestamptz
);
CREATE INDEX report_sends_client_idx ON report_sends (client_id);

-- Outcomes that arrived before their send, counted when it arrives.
CREATE TABLE report_pending
(
    send_id     uuid        NOT NULL,
    metric      text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (send_id, metric)
);

-- The time zone each client's periods are counted in, as the log says.
CREATE TABLE report_clients
(
    client_id uuid PRIMARY KEY,
    timezone  text NOT NULL
);
