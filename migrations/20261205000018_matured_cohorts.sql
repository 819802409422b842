-- The suggestion engine judges matured cohorts only (sends older than their
-- metric's window), so the patterns projection keeps when each send was
-- sent and when each of its metrics first followed. The counts are rebuilt
-- from the log: the tables are emptied and the projection starts over.
TRUNCATE pattern_counts, pattern_sends, pattern_leads, pattern_pending;
DELETE FROM projection_checkpoints WHERE projection = 'patterns';
DELETE FROM projection_parked WHERE projection = 'patterns';

ALTER TABLE pattern_sends
    ADD COLUMN sent_at     timestamptz NOT NULL,
    ADD COLUMN replied_at  timestamptz,
    ADD COLUMN positive_at timestamptz,
    ADD COLUMN meeting_at  timestamptz;
CREATE INDEX pattern_sends_cohort_idx ON pattern_sends (client_id, sent_at);

ALTER TABLE pattern_pending
    ADD COLUMN occurred_at timestamptz NOT NULL;
