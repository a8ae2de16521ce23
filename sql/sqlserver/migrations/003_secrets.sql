-- mibridge migration 003: mi_secret, the daemon's own store of tokens and ID numbers.
-- Run by hand: sqlcmd -S dbhost -d hisdb -b -I -i sql/sqlserver/migrations/003_secrets.sql
-- A flow's secrets (the mobile-pay payToken, a face-identified patient's ID number,
-- name, ecToken and authNo) live here instead of in mi_outbox.flow_data, which the HIS
-- and DBAs read. Only the daemon reads or writes it (grants.sql gives the HIS nothing
-- on it). A row's secrets go when the request is final, except what a later request
-- needs (a payment's payToken for its refunds and for a late notice's check), and with
-- the row when it is purged. name compares byte for byte (_BIN2), whatever the
-- database's default collation.
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
SET XACT_ABORT ON;
BEGIN TRANSACTION;
GO

CREATE TABLE mi_secret (
    outbox_id        BIGINT          NOT NULL,
    name             NVARCHAR(128)   COLLATE Latin1_General_100_BIN2 NOT NULL,
    value            NVARCHAR(4000)  NOT NULL,
    created_at       DATETIME2(6)    NOT NULL DEFAULT SYSUTCDATETIME(),
    CONSTRAINT mi_secret_pk PRIMARY KEY (outbox_id, name),
    CONSTRAINT mi_secret_outbox_fk FOREIGN KEY (outbox_id) REFERENCES mi_outbox (id)
);
INSERT INTO mi_schema_version (version, name) VALUES (3, N'003_secrets');
COMMIT TRANSACTION;
GO
