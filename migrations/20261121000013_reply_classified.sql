-- A reply recorded without its intent can get it once, later (a provider
-- that classifies replies after they arrive): the write side remembers
-- whether the reply's intent is known. Replies already recorded with an
-- intent are known.
ALTER TABLE send_state ADD COLUMN reply_classified boolean NOT NULL DEFAULT false;

UPDATE send_state SET reply_classified = true
WHERE send_id IN (SELECT aggregate_id::uuid FROM events
                  WHERE aggregate_type = 'send' AND event_type = 'outcome_recorded'
                    AND payload ->> 'kind' = 'replied' AND payload ->> 'intent' IS NOT NULL);
