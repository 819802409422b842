-- Where on the stream each projection resumes: the stream sequence of the
-- last message it applied. A projector (re)starts its consumer right after
-- it, so messages delivered to a failed batch are never skipped.
ALTER TABLE projection_checkpoints ADD COLUMN stream_sequence bigint NOT NULL DEFAULT 0;
