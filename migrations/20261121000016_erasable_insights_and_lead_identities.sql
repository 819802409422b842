-- Personal data kept out of the log, erasable:
--
-- The values a document's insights put into the context. Context events,
-- snapshots and read models hold a reference (`"$insight:<id>"`) in place
-- of each value; readers resolve it here. Keyed by the content hash of the
-- document they were read from, so erasing a document erases them too.
CREATE TABLE context_insights
(
    client_id    uuid        NOT NULL,
    insight_id   uuid        NOT NULL,
    content_hash text        NOT NULL,
    path         text        NOT NULL,
    value        jsonb       NOT NULL,
    stored_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, insight_id)
);
CREATE INDEX context_insights_document_idx ON context_insights (client_id, content_hash);

-- A lead's job title (or headline) and profile URL join its email and name:
-- free text about the person, never in the log. The profile URL also lets
-- an erasure find the dead letters and documents that name the lead by it.
ALTER TABLE lead_identities
    ADD COLUMN title       text,
    ADD COLUMN profile_url text;
