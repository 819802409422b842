-- Cheaper writes for the busiest tables, measured with pg_stat_statements
-- under batch ingest.
--
-- The sends projection asks, for every batch, which of its sends have a
-- suppressing outcome. A partial index holds only those outcomes (a small
-- fraction of all), so the question costs a probe into a tiny index
-- instead of a join over every outcome of the batch's sends.
CREATE INDEX send_outcomes_suppressing_idx ON send_outcomes (send_id) WHERE suppresses IS NOT NULL;

-- Rows updated in place (a send's state on each outcome, a lead's channel
-- history on each send) leave room on their page, so Postgres can write the
-- new version beside the old one without touching the indexes (a HOT
-- update: none of the updated columns is indexed).
ALTER TABLE send_state SET (fillfactor = 80);
ALTER TABLE pattern_leads SET (fillfactor = 80);
