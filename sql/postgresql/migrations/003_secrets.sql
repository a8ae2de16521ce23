-- mibridge migration 003: mi_secret, the daemon's own store of tokens and ID numbers.
-- Run by hand: psql -1 -v ON_ERROR_STOP=1 -d hisdb -f sql/postgresql/migrations/003_secrets.sql
-- A flow's secrets (the mobile-pay payToken, a face-identified patient's ID number,
-- name, ecToken and authNo) live here instead of in mi_outbox.flow_data, which the HIS
-- and DBAs read. Only the daemon reads or writes it (grants.sql gives the HIS nothing
-- on it). A row's secrets go when the request is final, except what a later request
-- needs (a payment's payToken for its refunds and for a late notice's check), and with
-- the row when it is purged.
CREATE TABLE mi_secret (
    outbox_id        BIGINT        NOT NULL REFERENCES mi_outbox (id),
    name             VARCHAR(64)   NOT NULL,
    value            VARCHAR(2000) NOT NULL,
    created_at       TIMESTAMPTZ   NOT NULL DEFAULT now(),
    CONSTRAINT mi_secret_pk PRIMARY KEY (outbox_id, name)
);

INSERT INTO mi_schema_version (version, name) VALUES (3, '003_secrets');
