-- mibridge migration 003: mi_secret, the daemon's own store of tokens and ID numbers.
-- Run by hand: mysql --database=hisdb < sql/mysql/migrations/003_secrets.sql
-- (MariaDB commits each DDL statement: this file can simply be run again.)
-- A flow's secrets (the mobile-pay payToken, a face-identified patient's ID number,
-- name, ecToken and authNo) live here instead of in mi_outbox.flow_data, which the HIS
-- and DBAs read. Only the daemon reads or writes it (grants.sql gives the HIS nothing
-- on it). A row's secrets go when the request is final, except what a later request
-- needs (a payment's payToken for its refunds and for a late notice's check), and with
-- the row when it is purged. name compares byte for byte (utf8mb4_nopad_bin).
CREATE TABLE IF NOT EXISTS mi_secret (
    outbox_id        BIGINT        NOT NULL,
    name             VARCHAR(64)   NOT NULL,
    value            VARCHAR(2000) NOT NULL,
    created_at       DATETIME(6)   NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    CONSTRAINT mi_secret_pk PRIMARY KEY (outbox_id, name),
    CONSTRAINT mi_secret_outbox_fk FOREIGN KEY (outbox_id) REFERENCES mi_outbox (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin;

INSERT IGNORE INTO mi_schema_version (version, name) VALUES (3, '003_secrets');
