-- mibridge migration 007: the identity written back to the HIS (issue 13).
-- Run by hand: mysql --database=hisdb < sql/mysql/migrations/007_identity.sql
-- (MariaDB commits each DDL statement: this file can simply be run again.)
-- mi_identity gets what the HIS needs to turn a self-pay patient into an insured one and to
-- match the row to its patient, never a whole ID number (docs/identity.md "mi_identity"):
-- the person type and the benefit check of the chosen insurance (psn_type, med_type,
-- benefit_status), the ID number and the name masked (certno_masked, psn_name_masked),
-- gend, whether the patient chose the insurance (chosen: 1 by identity.choose, 0 when
-- mibridge took it, NULL on rows written before 007) and
-- the kind of the request that wrote the row last (source_kind). The new text columns take
-- the table's utf8mb4_nopad_bin. The grants are the table's (grants.sql).
ALTER TABLE mi_identity ADD COLUMN IF NOT EXISTS psn_type VARCHAR(12);
ALTER TABLE mi_identity ADD COLUMN IF NOT EXISTS med_type VARCHAR(8);
ALTER TABLE mi_identity ADD COLUMN IF NOT EXISTS benefit_status VARCHAR(16);
ALTER TABLE mi_identity ADD COLUMN IF NOT EXISTS certno_masked VARCHAR(40);
ALTER TABLE mi_identity ADD COLUMN IF NOT EXISTS psn_name_masked VARCHAR(100);
ALTER TABLE mi_identity ADD COLUMN IF NOT EXISTS gend VARCHAR(4);
ALTER TABLE mi_identity ADD COLUMN IF NOT EXISTS chosen SMALLINT;
ALTER TABLE mi_identity ADD COLUMN IF NOT EXISTS source_kind VARCHAR(40);

INSERT IGNORE INTO mi_schema_version (version, name) VALUES (7, '007_identity');
