-- mibridge migration 003: mi_secret, the daemon's own store of tokens and ID numbers.
-- A flow's secrets (the mobile-pay payToken, a face-identified patient's ID number,
-- name, ecToken and authNo) live here instead of in mi_outbox.flow_data. A row's
-- secrets go when the request is final, except what a later request needs (a
-- payment's payToken for its refund), and with the row when it is purged.
-- SQLite has no grants: whoever can open the file can read this table (grants.sql).
CREATE TABLE mi_secret (
    outbox_id        INTEGER NOT NULL REFERENCES mi_outbox (id),
    name             TEXT    NOT NULL,
    value            TEXT    NOT NULL,
    created_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')),
    PRIMARY KEY (outbox_id, name)
);
