-- Read models of the `clients` projection and the `audit` projection, and the
-- one table that is not a projection: webhook secrets, kept out of the event
-- log (events carry only a fingerprint).

CREATE TABLE clients_view
(
    client_id            uuid PRIMARY KEY,
    name                 text             NOT NULL,
    industry             text             NOT NULL,
    company_size         text             NOT NULL,
    region               text             NOT NULL,
    permission_mode      text             NOT NULL,
    autopilot_threshold  double precision NOT NULL,
    data_sharing_consent boolean          NOT NULL,
    status               text             NOT NULL,
    suspended_reason     text,
    registered_at        timestamptz      NOT NULL,
    updated_at           timestamptz      NOT NULL,
    position             bigint           NOT NULL
);

CREATE TABLE client_api_keys
(
    key_id     uuid PRIMARY KEY,
    client_id  uuid        NOT NULL,
    role       text        NOT NULL,
    label      text        NOT NULL,
    key_hash   text        NOT NULL,
    issued_at  timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX client_api_keys_client_idx ON client_api_keys (client_id);

CREATE TABLE client_resources
(
    client_id     uuid        NOT NULL,
    kind          text        NOT NULL,
    address       text        NOT NULL,
    daily_cap     integer     NOT NULL,
    registered_at timestamptz NOT NULL,
    PRIMARY KEY (client_id, kind, address)
);

CREATE TABLE client_webhooks
(
    client_id          uuid        NOT NULL,
    provider           text        NOT NULL,
    secret_fingerprint text        NOT NULL,
    updated_at         timestamptz NOT NULL,
    PRIMARY KEY (client_id, provider)
);

CREATE TABLE audit_log
(
    global_position bigint PRIMARY KEY,
    client_id       uuid        NOT NULL,
    event_id        uuid        NOT NULL,
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    sequence        bigint      NOT NULL,
    event_type      text        NOT NULL,
    event_version   text        NOT NULL,
    actor           text,
    correlation_id  text,
    recorded_at     timestamptz NOT NULL,
    data            jsonb       NOT NULL
);
CREATE INDEX audit_log_client_idx ON audit_log (client_id, global_position DESC);

-- Not event-sourced on purpose: a secret must be replaceable and erasable,
-- and the immutable, widely-subscribed log must never carry it.
CREATE TABLE webhook_secrets
(
    client_id  uuid        NOT NULL,
    provider   text        NOT NULL,
    secret     text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, provider)
);
