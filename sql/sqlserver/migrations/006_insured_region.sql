-- mibridge migration 006: mi_insured_region, the insured regions (参保地) the hospital
-- supports, and the view mi_v_insured_regions that the HIS and the mini-program backend read.
-- Run by hand: sqlcmd -S dbhost -d hisdb -b -I -i sql/sqlserver/migrations/006_insured_region.sql
-- One transaction: on any error nothing of it is kept.
-- One row per region (6-digit division code). Filled by the daemon from the config, from a
-- CSV the DBA loads (mibridge regions load) and, where the site turns it on, from the
-- platform's 1901 dictionary; `source` names who set the row last, and a refresh from the
-- platform never changes a row a person set (docs/identity.md). on_* say on which channel
-- the region is offered (1 = yes); insutypes lists the insurance types accepted there,
-- comma-separated (NULL = every type). The daemon writes the table; the HIS and the
-- mini-program backend read the view (enabled regions only). The code is a key:
-- Latin1_General_100_BIN2 and twice its characters wide, as in every mi_ table; the digit
-- pattern compares it in that binary collation (no full-width digits).
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
SET XACT_ABORT ON;
BEGIN TRANSACTION;
GO

CREATE TABLE mi_insured_region (
    admdvs           NVARCHAR(12)  COLLATE Latin1_General_100_BIN2 NOT NULL,
    name             NVARCHAR(200) NOT NULL,
    enabled          SMALLINT      NOT NULL DEFAULT 1,
    on_wechat        SMALLINT      NOT NULL DEFAULT 1,
    on_alipay        SMALLINT      NOT NULL DEFAULT 1,
    on_counter       SMALLINT      NOT NULL DEFAULT 1,
    on_kiosk         SMALLINT      NOT NULL DEFAULT 1,
    insutypes        NVARCHAR(200),
    sort_order       INT,
    source           NVARCHAR(16)  NOT NULL,
    updated_at       DATETIME2(6)  NOT NULL DEFAULT SYSUTCDATETIME(),
    CONSTRAINT mi_insured_region_pk PRIMARY KEY (admdvs),
    CONSTRAINT mi_insured_region_admdvs_ck CHECK (DATALENGTH(admdvs) = 12 AND admdvs NOT LIKE N'%[^0-9]%'),
    CONSTRAINT mi_insured_region_name_ck CHECK (LEN(name) > 0),
    CONSTRAINT mi_insured_region_flags_ck CHECK (enabled IN (0, 1) AND on_wechat IN (0, 1) AND on_alipay IN (0, 1)
                                                 AND on_counter IN (0, 1) AND on_kiosk IN (0, 1)),
    CONSTRAINT mi_insured_region_source_ck CHECK (source IN (N'config', N'csv', N'1901', N'manual'))
);
GO

CREATE VIEW mi_v_insured_regions AS
SELECT admdvs, name, on_wechat, on_alipay, on_counter, on_kiosk, insutypes, sort_order, source, updated_at
  FROM mi_insured_region WHERE enabled = 1;
GO

INSERT INTO mi_schema_version (version, name) VALUES (6, N'006_insured_region');
COMMIT TRANSACTION;
GO
