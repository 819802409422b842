-- Read models of the `patterns` projection: per client (scope `client`)
-- and per industry segment (scope `industry:<name>`), how many sends each
-- pattern key had and how many replies, positive replies and meetings
-- followed. Statistics (rates, intervals, lift, p and q) are computed from
-- these counts when read.
CREATE TABLE pattern_counts
(
    client_id        uuid   NOT NULL,
    scope            text   NOT NULL,
    family           text   NOT NULL,
    key              text   NOT NULL,
    sends            bigint NOT NULL DEFAULT 0,
    replies          bigint NOT NULL DEFAULT 0,
    positive_replies bigint NOT NULL DEFAULT 0,
    meetings         bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (client_id, scope, family, key)
);

-- The keys each send was counted under, so its outcomes count there too.
CREATE TABLE pattern_sends
(
    send_id   uuid PRIMARY KEY,
    client_id uuid   NOT NULL,
    scopes    text[] NOT NULL,
    keys      text[] NOT NULL
);

-- Each lead's channels so far, for the HOW family.
CREATE TABLE pattern_leads
(
    client_id uuid   NOT NULL,
    lead_ref  text   NOT NULL,
    channels  text[] NOT NULL,
    PRIMARY KEY (client_id, lead_ref)
);

-- Outcomes that arrived before their send, counted when it arrives.
CREATE TABLE pattern_pending
(
    send_id uuid NOT NULL,
    metric  text NOT NULL,
    PRIMARY KEY (send_id, metric)
);
