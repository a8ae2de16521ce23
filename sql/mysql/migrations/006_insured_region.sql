-- mibridge migration 006: mi_insured_region, the insured regions (参保地) the hospital
-- supports, and the view mi_v_insured_regions that the HIS and the mini-program backend read.
-- Run by hand: mysql --database=hisdb < sql/mysql/migrations/006_insured_region.sql
-- (MariaDB commits each DDL statement: this file can simply be run again.)
-- One row per region (6-digit division code). Filled by the daemon from the config, from a
-- CSV the DBA loads (mibridge regions load) and, where the site turns it on, from the
-- platform's 1901 dictionary; `source` names who set the row last, and a refresh from the
-- platform never changes a row a person set (docs/identity.md). on_* say on which channel
-- the region is offered (1 = yes); insutypes lists the insurance types accepted there,
-- comma-separated (NULL = every type). The daemon writes the table; the HIS and the
-- mini-program backend read the view (enabled regions only). Text compares byte for byte
-- (utf8mb4_nopad_bin); times are UTC.
CREATE TABLE IF NOT EXISTS mi_insured_region (
    admdvs           VARCHAR(6)    NOT NULL,
    name             VARCHAR(100)  NOT NULL,
    enabled          SMALLINT      NOT NULL DEFAULT 1,
    on_wechat        SMALLINT      NOT NULL DEFAULT 1,
    on_alipay        SMALLINT      NOT NULL DEFAULT 1,
    on_counter       SMALLINT      NOT NULL DEFAULT 1,
    on_kiosk         SMALLINT      NOT NULL DEFAULT 1,
    insutypes        VARCHAR(200),
    sort_order       INT,
    source           VARCHAR(16)   NOT NULL,
    updated_at       DATETIME(6)   NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    CONSTRAINT mi_insured_region_pk PRIMARY KEY (admdvs),
    CONSTRAINT mi_insured_region_admdvs_ck CHECK (admdvs REGEXP '^[0-9]{6}$'),
    CONSTRAINT mi_insured_region_name_ck CHECK (CHAR_LENGTH(TRIM(name)) > 0),
    CONSTRAINT mi_insured_region_flags_ck CHECK (enabled IN (0, 1) AND on_wechat IN (0, 1) AND on_alipay IN (0, 1)
                                                 AND on_counter IN (0, 1) AND on_kiosk IN (0, 1)),
    CONSTRAINT mi_insured_region_source_ck CHECK (source IN ('config', 'csv', '1901', 'manual'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin;

-- CREATE OR REPLACE keeps the grants on the view (a DROP would lose them).
CREATE OR REPLACE VIEW mi_v_insured_regions AS
SELECT admdvs, name, on_wechat, on_alipay, on_counter, on_kiosk, insutypes, sort_order, source, updated_at
  FROM mi_insured_region WHERE enabled = 1;

INSERT IGNORE INTO mi_schema_version (version, name) VALUES (6, '006_insured_region');
