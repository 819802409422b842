-- A client's own alert limits for its sending resources (the `clients`
-- projection). The defaults are the limits every client had before it could
-- set its own, which is also what replaying older events gives.
ALTER TABLE clients_view
    ADD COLUMN bounce_alert_rate double precision NOT NULL DEFAULT 0.03,
    ADD COLUMN complaint_alert_rate double precision NOT NULL DEFAULT 0.001;
