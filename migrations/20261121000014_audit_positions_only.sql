-- The audit trail keeps, per client, the positions of its events and
-- nothing else: the log already holds every other field of each event
-- (immutably, under a unique index on global_position), and the audit query
-- joins it for them as it already did for the payload. Since the audit
-- projection shares the send projections' consumer (every send and outcome
-- is delivered once), its insert is on the busiest path there is: one narrow
-- row and one index instead of eleven columns and two.
ALTER TABLE audit_log
    DROP COLUMN event_id,
    DROP COLUMN aggregate_type,
    DROP COLUMN aggregate_id,
    DROP COLUMN sequence,
    DROP COLUMN event_type,
    DROP COLUMN event_version,
    DROP COLUMN actor,
    DROP COLUMN correlation_id,
    DROP COLUMN recorded_at;
ALTER TABLE audit_log DROP CONSTRAINT audit_log_pkey;
DROP INDEX audit_log_client_idx;
ALTER TABLE audit_log ADD PRIMARY KEY (client_id, global_position);
