-- PLACEHOLDER on the regions branch only: number 004 belongs to another change being
-- written in parallel. The lead drops this file (and the (4, '004_reserved') row in
-- install.sql) when merging that change. It changes nothing but the version.
INSERT INTO mi_schema_version (version, name) SELECT 4, '004_reserved' FROM dual
 WHERE NOT EXISTS (SELECT 1 FROM mi_schema_version WHERE version = 4)
/
COMMIT
/
