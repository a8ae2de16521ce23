-- mibridge migration 006: mi_insured_region, the insured regions (参保地) the hospital
-- supports, and the view mi_v_insured_regions that the HIS and the mini-program backend read.
-- Run by hand (WHENEVER SQLERROR EXIT FAILURE first):
--   sqlplus his@//dbhost:1521/HISPDB @sql/oracle/migrations/006_insured_region.sql
-- Oracle commits each DDL statement: this file can simply be run again.
-- One row per region (6-digit division code). Filled by the daemon from the config, from a
-- CSV the DBA loads (mibridge regions load) and, where the site turns it on, from the
-- platform's 1901 dictionary; `source` names who set the row last, and a refresh from the
-- platform never changes a row a person set (docs/identity.md). on_* say on which channel
-- the region is offered (1 = yes); insutypes lists the insurance types accepted there,
-- comma-separated (NULL = every type). The daemon writes the table; the HIS and the
-- mini-program backend read the view (enabled regions only). The digit check uses
-- TRANSLATE, which no NLS setting changes.
DECLARE
    v_count NUMBER;
BEGIN
    SELECT COUNT(*) INTO v_count FROM user_tables WHERE table_name = 'MI_INSURED_REGION';
    IF v_count = 0 THEN
        EXECUTE IMMEDIATE 'CREATE TABLE mi_insured_region (
            admdvs           VARCHAR2(6 CHAR)     NOT NULL,
            name             VARCHAR2(100 CHAR)   NOT NULL,
            enabled          NUMBER(1)            DEFAULT 1 NOT NULL,
            on_wechat        NUMBER(1)            DEFAULT 1 NOT NULL,
            on_alipay        NUMBER(1)            DEFAULT 1 NOT NULL,
            on_counter       NUMBER(1)            DEFAULT 1 NOT NULL,
            on_kiosk         NUMBER(1)            DEFAULT 1 NOT NULL,
            insutypes        VARCHAR2(200 CHAR),
            sort_order       NUMBER(10),
            source           VARCHAR2(16 CHAR)    NOT NULL,
            updated_at       TIMESTAMP WITH TIME ZONE DEFAULT SYSTIMESTAMP NOT NULL,
            CONSTRAINT mi_insured_region_pk PRIMARY KEY (admdvs),
            CONSTRAINT mi_insured_region_admdvs_ck CHECK (LENGTH(admdvs) = 6 AND TRANSLATE(admdvs, ''0123456789'', ''0000000000'') = ''000000''),
            CONSTRAINT mi_insured_region_name_ck CHECK (TRIM(name) IS NOT NULL),
            CONSTRAINT mi_insured_region_flags_ck CHECK (enabled IN (0, 1) AND on_wechat IN (0, 1) AND on_alipay IN (0, 1) AND on_counter IN (0, 1) AND on_kiosk IN (0, 1)),
            CONSTRAINT mi_insured_region_source_ck CHECK (source IN (''config'', ''csv'', ''1901'', ''manual'')))';
    END IF;
END;
/
CREATE OR REPLACE VIEW mi_v_insured_regions AS
SELECT admdvs, name, on_wechat, on_alipay, on_counter, on_kiosk, insutypes, sort_order, source, updated_at
  FROM mi_insured_region WHERE enabled = 1
/
INSERT INTO mi_schema_version (version, name)
SELECT 6, '006_insured_region' FROM dual WHERE NOT EXISTS (SELECT 1 FROM mi_schema_version WHERE version = 6)
/
COMMIT
/
