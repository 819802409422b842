-- Sends and outcomes.
--
-- Write side (kept in the same transaction as the events they derive
-- from, by the ingest adapter): the state each Send needs for deciding,
-- the suppression list authorisations read, per-resource daily usage, and
-- each client's lead-ref key.
CREATE TABLE send_state
(
    send_id             uuid PRIMARY KEY,
    client_id           uuid    NOT NULL,
    provider            text    NOT NULL,
    provider_message_id text    NOT NULL,
    sequence            bigint  NOT NULL,
    recorded            boolean NOT NULL,
    lead_ref            text,
    outcomes            text[]  NOT NULL DEFAULT '{}'
);
CREATE INDEX send_state_message_idx ON send_state (provider, provider_message_id);

CREATE TABLE suppression_list
(
    client_id uuid        NOT NULL,
    lead_ref  text        NOT NULL,
    reason    text        NOT NULL,
    send_id   uuid,
    since     timestamptz NOT NULL,
    PRIMARY KEY (client_id, lead_ref)
);

CREATE TABLE resource_usage
(
    client_id uuid    NOT NULL,
    resource  text    NOT NULL,
    day       date    NOT NULL,
    used      integer NOT NULL DEFAULT 0,
    PRIMARY KEY (client_id, resource, day)
);

-- The per-client key lead refs are hashed with (HMAC-SHA256 of the email).
CREATE TABLE client_lead_keys
(
    client_id uuid PRIMARY KEY,
    key       bytea NOT NULL
);

-- Personal data: never in the event log, erased on request.
CREATE TABLE lead_identities
(
    client_id  uuid        NOT NULL,
    lead_ref   text        NOT NULL,
    email      text,
    name       text,
    first_seen timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, lead_ref)
);

CREATE TABLE send_content
(
    send_id   uuid PRIMARY KEY,
    client_id uuid NOT NULL,
    lead_ref  text NOT NULL,
    subject   text
);
CREATE INDEX send_content_lead_idx ON send_content (client_id, lead_ref);

-- Webhooks: deliveries seen (dedupe) and what could not be mapped.
CREATE TABLE webhook_deliveries
(
    client_id   uuid        NOT NULL,
    provider    text        NOT NULL,
    delivery_id text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, provider, delivery_id)
);

CREATE TABLE webhook_dead_letters
(
    id          bigserial PRIMARY KEY,
    client_id   uuid        NOT NULL,
    provider    text        NOT NULL,
    reason      text        NOT NULL,
    payload     text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_dead_letters_client_idx ON webhook_dead_letters (client_id, received_at);

-- Read models of the `sends` projection.
CREATE TABLE sends_view
(
    send_id             uuid PRIMARY KEY,
    client_id           uuid        NOT NULL,
    lead_ref            text        NOT NULL,
    channel             text        NOT NULL,
    provider            text        NOT NULL,
    provider_message_id text        NOT NULL,
    campaign_id         text,
    step                integer,
    experiment_id       uuid,
    variant             text,
    context_version     bigint,
    agent               text,
    prompt_version      text,
    resource            text,
    lead                jsonb       NOT NULL,
    content             jsonb       NOT NULL,
    sent_at             timestamptz NOT NULL,
    position            bigint      NOT NULL
);
CREATE INDEX sends_view_client_idx ON sends_view (client_id, sent_at);

CREATE TABLE send_outcomes
(
    send_id     uuid        NOT NULL,
    client_id   uuid        NOT NULL,
    kind        text        NOT NULL,
    intent      text,
    bounce_type text,
    -- The suppression reason this outcome carries, if any.
    suppresses  text,
    occurred_at timestamptz NOT NULL,
    position    bigint      NOT NULL,
    PRIMARY KEY (send_id, kind)
);
CREATE INDEX send_outcomes_client_idx ON send_outcomes (client_id, kind);

CREATE TABLE suppression_view
(
    client_id uuid        NOT NULL,
    lead_ref  text        NOT NULL,
    reason    text        NOT NULL,
    send_id   uuid        NOT NULL,
    since     timestamptz NOT NULL,
    PRIMARY KEY (client_id, lead_ref)
);
