-- mibridge migration 007: the identity written back to the HIS (issue 13).
-- Run by hand: psql -1 -v ON_ERROR_STOP=1 -d hisdb -f sql/postgresql/migrations/007_identity.sql
-- mi_identity gets what the HIS needs to turn a self-pay patient into an insured one and to
-- match the row to its patient, never a whole ID number (docs/identity.md "mi_identity"):
-- the person type and the benefit check of the chosen insurance (psn_type, med_type,
-- benefit_status), the ID number and the name masked (certno_masked, psn_name_masked),
-- gend, whether the patient chose the insurance (chosen: 1 by identity.choose, 0 when
-- mibridge took it, NULL on rows written before 007) and
-- the kind of the request that wrote the row last (source_kind). The grants are the table's
-- (grants.sql): the HIS reads, the daemon writes.
ALTER TABLE mi_identity ADD COLUMN psn_type VARCHAR(12);
ALTER TABLE mi_identity ADD COLUMN med_type VARCHAR(8);
ALTER TABLE mi_identity ADD COLUMN benefit_status VARCHAR(16);
ALTER TABLE mi_identity ADD COLUMN certno_masked VARCHAR(40);
ALTER TABLE mi_identity ADD COLUMN psn_name_masked VARCHAR(100);
ALTER TABLE mi_identity ADD COLUMN gend VARCHAR(4);
ALTER TABLE mi_identity ADD COLUMN chosen SMALLINT;
ALTER TABLE mi_identity ADD COLUMN source_kind VARCHAR(40);

INSERT INTO mi_schema_version (version, name) VALUES (7, '007_identity');
