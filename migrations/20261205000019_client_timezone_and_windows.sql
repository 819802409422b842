-- Each client's time zone (its weeks and days are counted in it) and the
-- maturity windows of its outcomes: how many days after a send a reply, a
-- meeting and a conversion are still expected. Clients registered before
-- they had either are UTC with the default windows, which is also what
-- replaying their events gives, so no row needs rebuilding.
ALTER TABLE clients_view
    ADD COLUMN timezone               text NOT NULL DEFAULT 'UTC',
    ADD COLUMN reply_window_days      int  NOT NULL DEFAULT 14,
    ADD COLUMN meeting_window_days    int  NOT NULL DEFAULT 30,
    ADD COLUMN conversion_window_days int  NOT NULL DEFAULT 60;
