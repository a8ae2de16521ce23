-- mibridge migration 006: mi_insured_region, the insured regions (参保地) the hospital
-- supports, and the view mi_v_insured_regions that the HIS and the mini-program backend read.
-- Run by hand: psql -1 -v ON_ERROR_STOP=1 -d hisdb -f sql/postgresql/migrations/006_insured_region.sql
-- One row per region (6-digit division code). Filled by the daemon from the config, from a
-- CSV the DBA loads (mibridge regions load) and, where the site turns it on, from the
-- platform's 1901 dictionary; `source` names who set the row last, and a refresh from the
-- platform never changes a row a person set (docs/identity.md). on_* say on which channel
-- the region is offered (1 = yes); insutypes lists the insurance types accepted there,
-- comma-separated (NULL = every type). The daemon writes the table; the HIS and the
-- mini-program backend read the view (enabled regions only).
CREATE TABLE mi_insured_region (
    admdvs           VARCHAR(6)    NOT NULL,
    name             VARCHAR(100)  NOT NULL,
    enabled          SMALLINT      NOT NULL DEFAULT 1,
    on_wechat        SMALLINT      NOT NULL DEFAULT 1,
    on_alipay        SMALLINT      NOT NULL DEFAULT 1,
    on_counter       SMALLINT      NOT NULL DEFAULT 1,
    on_kiosk         SMALLINT      NOT NULL DEFAULT 1,
    insutypes        VARCHAR(200),
    sort_order       INTEGER,
    source           VARCHAR(16)   NOT NULL,
    updated_at       TIMESTAMPTZ   NOT NULL DEFAULT now(),
    CONSTRAINT mi_insured_region_pk PRIMARY KEY (admdvs),
    CONSTRAINT mi_insured_region_admdvs_ck CHECK (admdvs ~ '^[0-9]{6}$'),
    CONSTRAINT mi_insured_region_name_ck CHECK (length(btrim(name)) > 0),
    CONSTRAINT mi_insured_region_flags_ck CHECK (enabled IN (0, 1) AND on_wechat IN (0, 1) AND on_alipay IN (0, 1)
                                                 AND on_counter IN (0, 1) AND on_kiosk IN (0, 1)),
    CONSTRAINT mi_insured_region_source_ck CHECK (source IN ('config', 'csv', '1901', 'manual'))
);

CREATE VIEW mi_v_insured_regions AS
SELECT admdvs, name, on_wechat, on_alipay, on_counter, on_kiosk, insutypes, sort_order, source, updated_at
  FROM mi_insured_region WHERE enabled = 1;

INSERT INTO mi_schema_version (version, name) VALUES (6, '006_insured_region');
