-- mibridge migration 003: mi_secret, the daemon's own store of tokens and ID numbers.
-- Run by hand: sqlite3 his.db < sql/sqlite/migrations/003_secrets.sql
-- A flow's secrets (the mobile-pay payToken, a face-identified patient's ID number,
-- name, ecToken and authNo) live here instead of in mi_outbox.flow_data. A row's
-- secrets go when the request is final, except what a later request needs (a
-- payment's payToken for its refunds and for a late notice's check), and with the row
-- when it is purged.
-- SQLite has no grants: whoever can open the file can read this table (grants.sql).
.bail on
BEGIN IMMEDIATE;

CREATE TABLE mi_secret (
    outbox_id        INTEGER NOT NULL REFERENCES mi_outbox (id),
    name             TEXT    NOT NULL,
    value            TEXT    NOT NULL,
    created_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')),
    CONSTRAINT mi_secret_pk PRIMARY KEY (outbox_id, name)
);

INSERT INTO mi_schema_version (version, name) VALUES (3, '003_secrets');
COMMIT;
