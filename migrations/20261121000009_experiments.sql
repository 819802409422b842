-- Read model of the `experiments` projection. Results are computed when
-- read, from the sends read model.
CREATE TABLE experiments_view
(
    experiment_id uuid PRIMARY KEY,
    client_id     uuid        NOT NULL,
    name          text        NOT NULL,
    variants      jsonb       NOT NULL,
    metric        text        NOT NULL,
    status        text        NOT NULL,
    winner        text,
    decision      text,
    created_at    timestamptz NOT NULL,
    concluded_at  timestamptz,
    position      bigint      NOT NULL
);
CREATE INDEX experiments_view_client_idx ON experiments_view (client_id);
CREATE INDEX sends_view_experiment_idx ON sends_view (experiment_id) WHERE experiment_id IS NOT NULL;
