-- Every index on `events` is paid for by every append. Nothing looks events
-- up by event id (it is unique by construction, gen_random_uuid) or by
-- client and position (the audit read model serves that), so those two go.
DROP INDEX events_event_id_idx;
DROP INDEX events_client_position_idx;
