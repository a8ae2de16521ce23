-- mibridge migration 007: the identity written back to the HIS (issue 13).
-- Run by hand: sqlcmd -S dbhost -d hisdb -b -I -i sql/sqlserver/migrations/007_identity.sql
-- One transaction: on any error nothing of it is kept.
-- mi_identity gets what the HIS needs to turn a self-pay patient into an insured one and to
-- match the row to its patient, never a whole ID number (docs/identity.md "mi_identity"):
-- the person type and the benefit check of the chosen insurance (psn_type, med_type,
-- benefit_status), the ID number and the name masked (certno_masked, psn_name_masked),
-- gend, whether the patient chose the insurance (chosen: 1 by identity.choose, 0 when
-- mibridge took it, NULL on rows written before 007) and
-- the kind of the request that wrote the row last (source_kind; a kind is ASCII, so its 40
-- characters are 40 UTF-16 units; it is no key and keeps the database's collation). The
-- grants are the table's (grants.sql).
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
SET XACT_ABORT ON;
BEGIN TRANSACTION;
GO

ALTER TABLE mi_identity ADD psn_type NVARCHAR(12), med_type NVARCHAR(8), benefit_status NVARCHAR(16),
    certno_masked NVARCHAR(40), psn_name_masked NVARCHAR(100), gend NVARCHAR(4),
    chosen SMALLINT, source_kind NVARCHAR(40);
GO

INSERT INTO mi_schema_version (version, name) VALUES (7, N'007_identity');
COMMIT TRANSACTION;
GO
