-- Keyset reads of a review console (docs/decisions/paging.md): each list's
-- index holds its order, so a page costs the same however deep it is.

-- A client's experiments, newest first.
DROP INDEX experiments_view_client_idx;
CREATE INDEX experiments_view_client_idx ON experiments_view (client_id, created_at, experiment_id);

-- A client's sends, newest first. It replaces the index on (client_id,
-- sent_at), whose queries it serves as well: a busy table keeps one index
-- for both.
CREATE INDEX sends_view_client_sent_idx ON sends_view (client_id, sent_at, send_id);
DROP INDEX sends_view_client_idx;

-- A client's dead letters, newest first; erasure finds them by client too.
CREATE INDEX webhook_dead_letters_client_id_idx ON webhook_dead_letters (client_id, id);
DROP INDEX webhook_dead_letters_client_idx;

-- The approval queue of every client (the operator's), by status, oldest
-- first. A client's queue keeps its (client_id, status, proposed_at).
CREATE INDEX context_updates_review_idx ON context_updates (status, proposed_at, update_id);
