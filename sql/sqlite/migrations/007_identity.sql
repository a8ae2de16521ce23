-- mibridge migration 007: the identity written back to the HIS (issue 13).
-- Run by hand: sqlite3 his.db < sql/sqlite/migrations/007_identity.sql
-- mi_identity gets what the HIS needs to turn a self-pay patient into an insured one and to
-- match the row to its patient, never a whole ID number (docs/identity.md "mi_identity"):
-- the person type and the benefit check of the chosen insurance (psn_type, med_type,
-- benefit_status), the ID number and the name masked (certno_masked, psn_name_masked),
-- gend, whether the patient chose the insurance (chosen: 1 by identity.choose, 0 when
-- mibridge took it, NULL on rows written before 007) and
-- the kind of the request that wrote the row last (source_kind). SQLite has no grants.
.bail on
BEGIN IMMEDIATE;

ALTER TABLE mi_identity ADD COLUMN psn_type TEXT;
ALTER TABLE mi_identity ADD COLUMN med_type TEXT;
ALTER TABLE mi_identity ADD COLUMN benefit_status TEXT;
ALTER TABLE mi_identity ADD COLUMN certno_masked TEXT;
ALTER TABLE mi_identity ADD COLUMN psn_name_masked TEXT;
ALTER TABLE mi_identity ADD COLUMN gend TEXT;
ALTER TABLE mi_identity ADD COLUMN chosen INTEGER;
ALTER TABLE mi_identity ADD COLUMN source_kind TEXT;

INSERT INTO mi_schema_version (version, name) VALUES (7, '007_identity');
COMMIT;
