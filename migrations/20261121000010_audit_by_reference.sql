-- The audit trail keeps a reference to each event (its position), not a
-- second copy of its payload: the log already holds the payload, immutably,
-- under a unique index on global_position, and copying it doubled the write
-- cost of every event for the busiest projection.
ALTER TABLE audit_log DROP COLUMN data;
