-- An update Sextant withdraws (`update_withdrawn`) keeps, besides its
-- reason (in `reason`, as a rejection's), the evidence that withdrew it.
-- Null for every other update.
ALTER TABLE context_updates ADD COLUMN withdrawal_evidence jsonb;
