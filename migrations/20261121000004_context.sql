-- Read models of the `context` projection: the current document per
-- client, every version, every update (the approval queue), captured
-- documents. And two tables that are not projections: document bodies
-- (personal data may be in them: erasable, never in the log) and LLM spend.

CREATE TABLE context_current
(
    client_id  uuid PRIMARY KEY,
    version    bigint      NOT NULL,
    document   jsonb       NOT NULL,
    updated_at timestamptz NOT NULL,
    position   bigint      NOT NULL
);

CREATE TABLE context_versions
(
    client_id      uuid        NOT NULL,
    version        bigint      NOT NULL,
    document       jsonb       NOT NULL,
    source         text        NOT NULL,
    actor          text,
    update_id      uuid,
    via            text,
    rationale      text,
    evidence       jsonb,
    reason         text,
    rolled_back_to bigint,
    paths          jsonb       NOT NULL,
    created_at     timestamptz NOT NULL,
    position       bigint      NOT NULL,
    PRIMARY KEY (client_id, version)
);
CREATE INDEX context_versions_time_idx ON context_versions (client_id, created_at);

CREATE TABLE context_updates
(
    update_id      uuid PRIMARY KEY,
    client_id      uuid        NOT NULL,
    source         text        NOT NULL,
    status         text        NOT NULL,
    route          text        NOT NULL,
    patch          jsonb       NOT NULL,
    modified_patch jsonb,
    paths          jsonb       NOT NULL,
    base_version   bigint      NOT NULL,
    rationale      text        NOT NULL,
    evidence       jsonb       NOT NULL,
    confidence     double precision,
    proposed_by    text,
    proposed_at    timestamptz NOT NULL,
    decided_by     text,
    decided_at     timestamptz,
    note           text,
    reason         text,
    superseded_by  uuid,
    version        bigint,
    via            text,
    position       bigint      NOT NULL
);
CREATE INDEX context_updates_queue_idx ON context_updates (client_id, status, proposed_at);

CREATE TABLE context_documents
(
    client_id    uuid        NOT NULL,
    key          text        NOT NULL,
    content_hash text        NOT NULL,
    title        text        NOT NULL,
    source       text        NOT NULL,
    captured_at  timestamptz NOT NULL,
    recorded_at  timestamptz NOT NULL,
    extractor    text,
    captures     integer     NOT NULL,
    PRIMARY KEY (client_id, key)
);

-- Not a projection: document text, keyed by content hash, erasable.
CREATE TABLE document_bodies
(
    client_id    uuid        NOT NULL,
    content_hash text        NOT NULL,
    content      text        NOT NULL,
    stored_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, content_hash)
);

-- Not a projection: what each client's LLM calls cost, per day.
CREATE TABLE llm_spend
(
    client_id uuid             NOT NULL,
    day       date             NOT NULL,
    calls     integer          NOT NULL DEFAULT 0,
    tokens    bigint           NOT NULL DEFAULT 0,
    cost_usd  double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (client_id, day)
);
