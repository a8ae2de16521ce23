-- mibridge: install into a SQL Server (2016+: ISJSON, JSON_VALUE, DATEDIFF_BIG,
-- DROP ... IF EXISTS) HIS database.
-- Run by hand:   sqlcmd -S dbhost -d hisdb -b -I -i sql/sqlserver/install.sql
-- or:            mibridge db install --url mssql://dba@dbhost:1433/hisdb
-- This file is the schema at its latest version: the same as
-- migrations/001_baseline.sql followed by every later migration (the tests
-- compare the two). An installed database is upgraded with
-- `mibridge db upgrade`, never reinstalled: see docs/migrations.md.
-- Creates only objects whose names start with mi_, in your default schema
-- (usually dbo); sql/sqlserver/uninstall.sql removes them. The states are
-- explained in sql/postgresql/install.sql and docs/.
--
-- Times are DATETIME2 in UTC from SYSUTCDATETIME(), the server's clock; every
-- time the daemon compares (leases, retries) is computed by the server.
-- Text columns are NVARCHAR: the daemon's driver sends Unicode parameters, and
-- an NVARCHAR parameter compared with a VARCHAR column would turn every index
-- seek into a scan. Key columns (kinds, business and serial keys, patient,
-- order, message and notice ids) are Latin1_General_100_BIN2, whatever the
-- database's collation: the usual Chinese_PRC_CI_AS ignores case, full/half
-- width and trailing blanks, under which distinct keys would be one.
-- NVARCHAR(n) counts UTF-16 units and a character beyond U+FFFF takes two:
-- columns are twice as wide as the characters the daemon and the checks allow.
-- No filtered index and no computed column: nothing here depends on the SET
-- options of the HIS's session, and the procedures and the trigger set their own.
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
GO
IF OBJECT_ID(N'mi_outbox', N'U') IS NOT NULL
    THROW 50091, N'mibridge: already installed in this database; run mibridge db upgrade', 1;
GO

-- Which migrations this database has (docs/migrations.md).
CREATE TABLE mi_schema_version (
    version          INT           NOT NULL,
    name             NVARCHAR(100) NOT NULL,
    applied_at       DATETIME2(6)  NOT NULL DEFAULT SYSUTCDATETIME(),
    CONSTRAINT mi_schema_version_pk PRIMARY KEY (version)
);

-- Outbox: one row per request the HIS makes (states: see the CHECK below and
-- sql/postgresql/install.sql).
CREATE TABLE mi_outbox (
    id               BIGINT        IDENTITY(1,1) NOT NULL,
    kind             NVARCHAR(80)  COLLATE Latin1_General_100_BIN2 NOT NULL,
    business_key     NVARCHAR(128) COLLATE Latin1_General_100_BIN2 NOT NULL,
    serial_key       NVARCHAR(128) COLLATE Latin1_General_100_BIN2 NOT NULL,
    payload          NVARCHAR(MAX) NOT NULL,
    state            NVARCHAR(16)  NOT NULL DEFAULT N'pending',
    step             NVARCHAR(40),
    flow_data        NVARCHAR(MAX),
    current_call     NVARCHAR(64),
    call_unsafe      SMALLINT      NOT NULL DEFAULT 0,
    attempts         INT           NOT NULL DEFAULT 0,
    max_attempts     INT           NOT NULL DEFAULT 10,
    next_attempt_at  DATETIME2(6)  NOT NULL DEFAULT SYSUTCDATETIME(),
    lease_owner      NVARCHAR(64),
    lease_expires_at DATETIME2(6),
    created_at       DATETIME2(6)  NOT NULL DEFAULT SYSUTCDATETIME(),
    updated_at       DATETIME2(6)  NOT NULL DEFAULT SYSUTCDATETIME(),
    finished_at      DATETIME2(6),
    last_error_code  NVARCHAR(40),
    last_error_message NVARCHAR(2000),
    CONSTRAINT mi_outbox_pk PRIMARY KEY (id),
    CONSTRAINT mi_outbox_kind_key UNIQUE (kind, business_key),
    CONSTRAINT mi_outbox_state_ck CHECK (state IN (N'pending',N'running',N'in_doubt',N'held',N'done',N'failed',N'resolved')),
    CONSTRAINT mi_outbox_key_ck CHECK (LEN(business_key) > 0 AND LEN(kind) > 0)
);
-- Plain indexes, not filtered ones: a filtered index makes every INSERT or
-- UPDATE of the table fail (Msg 1934) in a session whose ANSI_WARNINGS,
-- ARITHABORT, CONCAT_NULL_YIELDS_NULL or ANSI_PADDING is off, which is what
-- old HIS clients (DB-Library, PowerBuilder, Delphi) send; and a query that
-- binds its states as parameters cannot use one. State first: the claim and
-- the rescuer seek the few open rows in it.
CREATE INDEX mi_outbox_ready_ix ON mi_outbox (state, next_attempt_at, id);
-- A serial key's rows, with their state and kind: the claim's "no older open
-- row" check and a refund's count of its payment's other requests.
CREATE INDEX mi_outbox_serial_ix ON mi_outbox (serial_key, id) INCLUDE (state, kind);
CREATE INDEX mi_outbox_lease_ix ON mi_outbox (state, lease_expires_at);
CREATE INDEX mi_outbox_finished_ix ON mi_outbox (finished_at);

-- Inbox: results for the HIS. The HIS reads rows WHERE consumed_at IS NULL and
-- marks each one with EXEC mi_inbox_consume @p_id = ..., @p_ack = N'accepted' | N'rejected'.
CREATE TABLE mi_inbox (
    id               BIGINT        IDENTITY(1,1) NOT NULL,
    outbox_id        BIGINT        NOT NULL,
    kind             NVARCHAR(80)  COLLATE Latin1_General_100_BIN2 NOT NULL,
    business_key     NVARCHAR(128) COLLATE Latin1_General_100_BIN2 NOT NULL,
    result_type      NVARCHAR(40)  NOT NULL,
    outcome          NVARCHAR(16)  NOT NULL,
    error_code       NVARCHAR(40),
    error_message    NVARCHAR(2000),
    order_id         NVARCHAR(128) COLLATE Latin1_General_100_BIN2,
    settlement_id    NVARCHAR(128) COLLATE Latin1_General_100_BIN2,
    total_amount     DECIMAL(16,2),
    fund_amount      DECIMAL(16,2),
    account_amount   DECIMAL(16,2),
    cash_amount      DECIMAL(16,2),
    result_json      NVARCHAR(MAX),
    created_at       DATETIME2(6)  NOT NULL DEFAULT SYSUTCDATETIME(),
    consumed_at      DATETIME2(6),
    his_ack          NVARCHAR(16),
    CONSTRAINT mi_inbox_pk PRIMARY KEY (id),
    CONSTRAINT mi_inbox_outbox_fk FOREIGN KEY (outbox_id) REFERENCES mi_outbox (id),
    CONSTRAINT mi_inbox_outcome_ck CHECK (outcome IN (N'ok',N'failed',N'held',N'resolved')),
    CONSTRAINT mi_inbox_ack_ck CHECK (his_ack IS NULL OR his_ack IN (N'accepted',N'rejected'))
);
CREATE INDEX mi_inbox_unconsumed_ix ON mi_inbox (consumed_at, id);
CREATE INDEX mi_inbox_outbox_ix ON mi_inbox (outbox_id);
-- The HIS polls its results by business key; refunds sum their payment's rows by order_id.
CREATE INDEX mi_inbox_business_ix ON mi_inbox (business_key, kind);
CREATE INDEX mi_inbox_order_ix ON mi_inbox (order_id);

-- Call journal: one row per remote call, written BEFORE the call is sent.
CREATE TABLE mi_journal (
    id               BIGINT        IDENTITY(1,1) NOT NULL,
    msg_id           NVARCHAR(128) COLLATE Latin1_General_100_BIN2 NOT NULL,
    outbox_id        BIGINT        NOT NULL,
    step             NVARCHAR(40)  NOT NULL,
    interface        NVARCHAR(40)  NOT NULL,
    request_masked   NVARCHAR(MAX),
    response_masked  NVARCHAR(MAX),
    http_status      INT,
    started_at       DATETIME2(6)  NOT NULL DEFAULT SYSUTCDATETIME(),
    ended_at         DATETIME2(6),
    outcome          NVARCHAR(16),
    error_message    NVARCHAR(2000),
    -- 1: not safe to repeat (may have moved money); NULL: journalled before migration 005
    unsafe           SMALLINT,
    CONSTRAINT mi_journal_pk PRIMARY KEY (id),
    CONSTRAINT mi_journal_msg_uq UNIQUE (msg_id),
    CONSTRAINT mi_journal_outbox_fk FOREIGN KEY (outbox_id) REFERENCES mi_outbox (id),
    CONSTRAINT mi_journal_outcome_ck CHECK (outcome IS NULL OR outcome IN (N'ok',N'rejected',N'unknown'))
);
CREATE INDEX mi_journal_outbox_ix ON mi_journal (outbox_id);
CREATE INDEX mi_journal_started_ix ON mi_journal (started_at);

-- Insurance identity written back for the HIS (one row per HIS patient).
CREATE TABLE mi_identity (
    his_patient_id   NVARCHAR(128) COLLATE Latin1_General_100_BIN2 NOT NULL,
    psn_no           NVARCHAR(80)  COLLATE Latin1_General_100_BIN2 NOT NULL,
    insuplc_admdvs   NVARCHAR(12),
    insutype         NVARCHAR(12),
    benefit          NVARCHAR(40),
    psn_cert_type    NVARCHAR(8),
    source_outbox_id BIGINT,
    updated_at       DATETIME2(6)  NOT NULL DEFAULT SYSUTCDATETIME(),
    -- migration 007: the identity written back to the HIS (docs/identity.md)
    psn_type         NVARCHAR(12),
    med_type         NVARCHAR(8),
    benefit_status   NVARCHAR(16),
    certno_masked    NVARCHAR(40),
    psn_name_masked  NVARCHAR(100),
    gend             NVARCHAR(4),
    chosen           SMALLINT,
    source_kind      NVARCHAR(40),
    CONSTRAINT mi_identity_pk PRIMARY KEY (his_patient_id)
);

-- Audit trail of every human action (requeue, resolve) and repair.
CREATE TABLE mi_audit (
    id               BIGINT        IDENTITY(1,1) NOT NULL,
    outbox_id        BIGINT        NOT NULL,
    action           NVARCHAR(40)  NOT NULL,
    actor            NVARCHAR(64)  NOT NULL,
    note             NVARCHAR(2000),
    at               DATETIME2(6)  NOT NULL DEFAULT SYSUTCDATETIME(),
    -- the database login that ran the action (actor: who asked, e.g. alice@console)
    db_login         NVARCHAR(128),
    CONSTRAINT mi_audit_pk PRIMARY KEY (id),
    CONSTRAINT mi_audit_outbox_fk FOREIGN KEY (outbox_id) REFERENCES mi_outbox (id)
);
CREATE INDEX mi_audit_outbox_ix ON mi_audit (outbox_id);

-- Notices the platforms push to us (the mobile-pay centre's 6302 settlement notice),
-- recorded once each after their signature verified, by the daemon's notice endpoint.
-- A repeated notice only bumps received_count. Flows read it; nobody else writes it.
-- outbox_id has no foreign key: a notice can name a row that was purged or never existed.
CREATE TABLE mi_notice (
    id               BIGINT        IDENTITY(1,1) NOT NULL,
    interface        NVARCHAR(32)  COLLATE Latin1_General_100_BIN2 NOT NULL,
    notice_key       NVARCHAR(128) COLLATE Latin1_General_100_BIN2 NOT NULL,
    business_key     NVARCHAR(128) COLLATE Latin1_General_100_BIN2,
    outbox_id        BIGINT,
    notice_json      NVARCHAR(MAX) NOT NULL,
    received_count   INT           NOT NULL DEFAULT 1,
    first_received_at DATETIME2(6) NOT NULL DEFAULT SYSUTCDATETIME(),
    last_received_at DATETIME2(6)  NOT NULL DEFAULT SYSUTCDATETIME(),
    CONSTRAINT mi_notice_pk PRIMARY KEY (id),
    CONSTRAINT mi_notice_key UNIQUE (interface, notice_key)
);
CREATE INDEX mi_notice_business_ix ON mi_notice (business_key);
GO

GO

-- mi_json_check: why a payload is refused (NULL when it is fine), beyond
-- ISJSON: a lone UTF-16 surrogate escape (\ud800 without its \udc00), which
-- the daemon could never write back; and a key twice in one object (JSON_VALUE
-- reads the first, the daemon the last). The second needs OPENJSON, that is
-- database compatibility level 130 or more; below that it is left to the
-- daemon, which fails such a request (BAD_INPUT) without calling anyone.
-- Every string comparison here is binary (Latin1_General_100_BIN2): the
-- database's collation may ignore case and full/half width.
CREATE PROCEDURE mi_json_check
    @doc     NVARCHAR(MAX),
    @problem NVARCHAR(400) OUTPUT
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT ON;
    SET ANSI_WARNINGS ON;
    SET ARITHABORT ON;
    SET CONCAT_NULL_YIELDS_NULL ON;
    SET ANSI_PADDING ON;
    SET NUMERIC_ROUNDABORT OFF;
    DECLARE @t NVARCHAR(MAX), @i BIGINT, @h NVARCHAR(4), @dup NVARCHAR(4000);
    SET @problem = NULL;
    -- With the escaped backslashes blanked out, each remaining \u starts an escape.
    SET @t = REPLACE(@doc COLLATE Latin1_General_100_BIN2, N'\\', N'__');
    SET @i = CHARINDEX(N'\u' COLLATE Latin1_General_100_BIN2, @t);
    WHILE @i > 0
    BEGIN
        SET @h = SUBSTRING(@t, @i + 2, 4);
        IF @h COLLATE Latin1_General_100_BIN2 LIKE N'[dD][89abAB][0-9a-fA-F][0-9a-fA-F]'
        BEGIN
            IF SUBSTRING(@t, @i + 6, 6) COLLATE Latin1_General_100_BIN2
                   NOT LIKE N'\u[dD][c-fC-F][0-9a-fA-F][0-9a-fA-F]'
            BEGIN
                SET @problem = N'mibridge: payload is not valid JSON';
                RETURN;
            END;
            SET @i = CHARINDEX(N'\u' COLLATE Latin1_General_100_BIN2, @t, @i + 12);
        END
        ELSE IF @h COLLATE Latin1_General_100_BIN2 LIKE N'[dD][c-fC-F][0-9a-fA-F][0-9a-fA-F]'
        BEGIN
            SET @problem = N'mibridge: payload is not valid JSON';
            RETURN;
        END
        ELSE
            SET @i = CHARINDEX(N'\u' COLLATE Latin1_General_100_BIN2, @t, @i + 6);
    END;
    IF (SELECT compatibility_level FROM sys.databases WHERE database_id = DB_ID()) >= 130
    BEGIN
        -- Every member with the path of its object; a path holds each key with
        -- its length in bytes, so that no two paths can be confused.
        EXEC sp_executesql N'
            WITH n AS (
                SELECT CAST(N''$'' AS NVARCHAR(MAX)) COLLATE Latin1_General_100_BIN2 AS parent,
                       j.[key] AS k, j.[value] AS v, j.[type] AS t
                  FROM OPENJSON(@d) j
                UNION ALL
                SELECT CAST(n.parent + N''['' + CAST(DATALENGTH(n.k) AS NVARCHAR(10)) + N'':'' + n.k + N'']''
                            AS NVARCHAR(MAX)) COLLATE Latin1_General_100_BIN2,
                       j.[key], j.[value], j.[type]
                  FROM n CROSS APPLY OPENJSON(n.v) j
                 WHERE n.t IN (4, 5))
            SELECT TOP (1) @dup = k FROM n GROUP BY parent, k, DATALENGTH(k) HAVING COUNT(*) > 1',
            N'@d NVARCHAR(MAX), @dup NVARCHAR(4000) OUTPUT', @d = @doc, @dup = @dup OUTPUT;
        IF @dup IS NOT NULL
            SET @problem = LEFT(CONCAT(N'mibridge: payload has the key "', @dup, N'" twice in one object'), 400);
    END;
END;
GO

-- mi_json_same: whether two payloads are the same document, whatever the order
-- of their fields (numbers compared as written). Below compatibility level
-- 130 (no OPENJSON) the same text only.
CREATE PROCEDURE mi_json_same
    @a    NVARCHAR(MAX),
    @b    NVARCHAR(MAX),
    @same BIT OUTPUT
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT ON;
    SET ANSI_WARNINGS ON;
    SET ARITHABORT ON;
    SET CONCAT_NULL_YIELDS_NULL ON;
    SET ANSI_PADDING ON;
    SET NUMERIC_ROUNDABORT OFF;
    SET @same = CASE WHEN DATALENGTH(@a) = DATALENGTH(@b)
                      AND CAST(@a AS VARBINARY(MAX)) = CAST(@b AS VARBINARY(MAX)) THEN 1 ELSE 0 END;
    IF @same = 1 OR (SELECT compatibility_level FROM sys.databases WHERE database_id = DB_ID()) < 130
        RETURN;
    EXEC sp_executesql N'
        WITH x AS (
            SELECT CAST(N''['' + CAST(DATALENGTH(j.[key]) AS NVARCHAR(10)) + N'':'' + j.[key] + N'']''
                        AS NVARCHAR(MAX)) COLLATE Latin1_General_100_BIN2 AS p, j.[value] AS v, j.[type] AS t
              FROM OPENJSON(@a) j
            UNION ALL
            SELECT CAST(x.p + N''['' + CAST(DATALENGTH(j.[key]) AS NVARCHAR(10)) + N'':'' + j.[key] + N'']''
                        AS NVARCHAR(MAX)) COLLATE Latin1_General_100_BIN2, j.[value], j.[type]
              FROM x CROSS APPLY OPENJSON(x.v) j WHERE x.t IN (4, 5)),
        y AS (
            SELECT CAST(N''['' + CAST(DATALENGTH(j.[key]) AS NVARCHAR(10)) + N'':'' + j.[key] + N'']''
                        AS NVARCHAR(MAX)) COLLATE Latin1_General_100_BIN2 AS p, j.[value] AS v, j.[type] AS t
              FROM OPENJSON(@b) j
            UNION ALL
            SELECT CAST(y.p + N''['' + CAST(DATALENGTH(j.[key]) AS NVARCHAR(10)) + N'':'' + j.[key] + N'']''
                        AS NVARCHAR(MAX)) COLLATE Latin1_General_100_BIN2, j.[value], j.[type]
              FROM y CROSS APPLY OPENJSON(y.v) j WHERE y.t IN (4, 5)),
        xs AS (SELECT p, DATALENGTH(p) AS pl, t, CASE WHEN t IN (4, 5) THEN NULL
                                                      ELSE CAST(v AS VARBINARY(MAX)) END AS vb FROM x),
        ys AS (SELECT p, DATALENGTH(p) AS pl, t, CASE WHEN t IN (4, 5) THEN NULL
                                                      ELSE CAST(v AS VARBINARY(MAX)) END AS vb FROM y)
        SELECT @same = CASE WHEN EXISTS (SELECT * FROM xs EXCEPT SELECT * FROM ys)
                              OR EXISTS (SELECT * FROM ys EXCEPT SELECT * FROM xs) THEN 0 ELSE 1 END',
        N'@a NVARCHAR(MAX), @b NVARCHAR(MAX), @same BIT OUTPUT', @a = @a, @b = @b, @same = @same OUTPUT;
END;
GO

-- Validation that holds however rows arrive (mi_enqueue or a plain INSERT, of
-- one row or many, from an HIS trigger): bad input is refused to the HIS with
-- error 50001..50009 ('mibridge: ...'), the HIS's transaction is rolled back
-- and nothing is inserted. An INSTEAD OF trigger, because it must fill in an
-- omitted serial_key before the NOT NULL constraint is checked. Only kind,
-- business_key, serial_key and payload are taken from the INSERT; every other
-- column starts at its default (the daemon owns them). SCOPE_IDENTITY() is
-- NULL after an INSERT through this trigger: read the id back by
-- (kind, business_key), or call mi_enqueue.
-- The key columns are wider than the keys may be (80/128 UTF-16 units for
-- 40/64 characters), so that a session with ANSI_WARNINGS OFF cannot cut a
-- long key into a valid one: lengths are counted here, in characters (a
-- character beyond U+FFFF is one, as in the daemon; the _SC collation counts so).
-- No regular expressions in T-SQL: an amount is refused when it is empty, has a
-- character other than a digit or '.', has no digit before the '.', has two
-- '.', ends with '.', or has more than 2 decimals.
-- The SET options are the module's own: an old HIS client (DB-Library,
-- PowerBuilder, Delphi) may run with ANSI_WARNINGS or CONCAT_NULL_YIELDS_NULL off.
CREATE TRIGGER mi_outbox_validate_tg ON mi_outbox
INSTEAD OF INSERT
AS
BEGIN
    SET NOCOUNT ON;
    SET ANSI_WARNINGS ON;
    SET ARITHABORT ON;
    SET CONCAT_NULL_YIELDS_NULL ON;
    SET ANSI_PADDING ON;
    SET NUMERIC_ROUNDABORT OFF;
    DECLARE @payload NVARCHAR(MAX), @problem NVARCHAR(400);
    IF EXISTS (SELECT 1 FROM inserted WHERE kind IS NULL OR LEN(kind) = 0)
        THROW 50001, N'mibridge: kind is required', 1;
    IF EXISTS (SELECT 1 FROM inserted WHERE business_key IS NULL OR LEN(business_key) = 0)
        THROW 50001, N'mibridge: business_key is required', 1;
    -- Keys compare byte for byte (BIN2), and '=' in T-SQL ignores trailing
    -- blanks whatever the collation: a blank at either end is refused, as on every database.
    IF EXISTS (SELECT 1 FROM inserted
                WHERE UNICODE(kind) IN (9, 10, 13, 32) OR UNICODE(RIGHT(kind, 1)) IN (9, 10, 13, 32))
        THROW 50005, N'mibridge: kind must not start or end with a blank', 1;
    IF EXISTS (SELECT 1 FROM inserted
                WHERE UNICODE(business_key) IN (9, 10, 13, 32) OR UNICODE(RIGHT(business_key, 1)) IN (9, 10, 13, 32))
        THROW 50005, N'mibridge: business_key must not start or end with a blank', 1;
    IF EXISTS (SELECT 1 FROM inserted
                WHERE LEN(serial_key) > 0
                  AND (UNICODE(serial_key) IN (9, 10, 13, 32) OR UNICODE(RIGHT(serial_key, 1)) IN (9, 10, 13, 32)))
        THROW 50005, N'mibridge: serial_key must not start or end with a blank', 1;
    IF EXISTS (SELECT 1 FROM inserted WHERE LEN(kind COLLATE Latin1_General_100_CI_AS_SC) > 40)
        THROW 50006, N'mibridge: kind is longer than 40 characters', 1;
    IF EXISTS (SELECT 1 FROM inserted WHERE LEN(business_key COLLATE Latin1_General_100_CI_AS_SC) > 64)
        THROW 50006, N'mibridge: business_key is longer than 64 characters', 1;
    IF EXISTS (SELECT 1 FROM inserted WHERE LEN(serial_key COLLATE Latin1_General_100_CI_AS_SC) > 64)
        THROW 50006, N'mibridge: serial_key is longer than 64 characters', 1;
    IF EXISTS (SELECT 1 FROM inserted WHERE payload IS NULL OR ISJSON(payload) = 0)
        THROW 50002, N'mibridge: payload is not valid JSON', 1;
    -- Valid JSON whose first character after blanks is '{' is an object.
    IF EXISTS (SELECT 1 FROM inserted
                WHERE SUBSTRING(payload, PATINDEX(N'%[^ ' + NCHAR(9) + NCHAR(10) + NCHAR(13) + N']%', payload), 1) <> N'{')
        THROW 50003, N'mibridge: payload must be a JSON object', 1;
    DECLARE payloads CURSOR LOCAL FAST_FORWARD FOR SELECT payload FROM inserted;
    OPEN payloads;
    FETCH NEXT FROM payloads INTO @payload;
    WHILE @@FETCH_STATUS = 0
    BEGIN
        EXEC mi_json_check @payload, @problem OUTPUT;
        IF @problem IS NOT NULL
            THROW 50007, @problem, 1;
        FETCH NEXT FROM payloads INTO @payload;
    END;
    CLOSE payloads;
    DEALLOCATE payloads;
    -- JSON_VALUE gives the text of a scalar as written (NULL for JSON null or a
    -- missing key); JSON_QUERY gives an object or array, which is not an amount either.
    IF EXISTS (SELECT 1 FROM inserted
                CROSS APPLY (SELECT JSON_VALUE(payload, N'$.total_amount') COLLATE Latin1_General_100_BIN2 AS v,
                                    JSON_QUERY(payload, N'$.total_amount') AS doc) t
                WHERE t.doc IS NOT NULL
                   OR (t.v IS NOT NULL
                       AND (DATALENGTH(t.v) = 0 OR t.v LIKE N'%[^0-9.]%' OR t.v LIKE N'.%' OR t.v LIKE N'%.'
                            OR t.v LIKE N'%.%.%' OR t.v LIKE N'%.[0-9][0-9][0-9]%')))
        THROW 50004, N'mibridge: total_amount must be a non-negative amount with at most 2 decimals', 1;
    -- An omitted serial key means "this request is its own sequence".
    INSERT INTO mi_outbox (kind, business_key, serial_key, payload)
    SELECT kind, business_key,
           CASE WHEN serial_key IS NULL OR LEN(serial_key) = 0 THEN business_key ELSE serial_key END,
           payload
      FROM inserted;
END;
GO

-- The one call the HIS makes per request; @p_id returns the outbox id:
--   DECLARE @id BIGINT;
--   EXEC mi_enqueue N'test.charge', N'INV-1', N'VISIT-1', N'{"total_amount":"12.50"}', @id OUTPUT;
-- The same (kind, business_key) with the same payload returns the existing id
-- (a retried HIS transaction is harmless; the order of the payload's fields
-- does not matter); with a different payload it is an error (50010).
-- It runs in a transaction of its own (nested in the HIS's, if any), with
-- XACT_ABORT: UPDLOCK, HOLDLOCK lock the key (or the gap where it would go)
-- until it commits, so two concurrent calls for one key cannot both insert;
-- on any error everything is rolled back and the error goes to the caller.
-- The parameters are long enough that nothing is cut before it is checked.
CREATE PROCEDURE mi_enqueue
    @p_kind         NVARCHAR(4000),
    @p_business_key NVARCHAR(4000),
    @p_serial_key   NVARCHAR(4000),
    @p_payload      NVARCHAR(MAX),
    @p_id           BIGINT OUTPUT
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT ON;
    SET ANSI_WARNINGS ON;
    SET ARITHABORT ON;
    SET CONCAT_NULL_YIELDS_NULL ON;
    SET ANSI_PADDING ON;
    SET NUMERIC_ROUNDABORT OFF;
    DECLARE @old NVARCHAR(MAX), @same BIT, @problem NVARCHAR(400), @msg NVARCHAR(400);
    SET @p_id = NULL;
    -- The key rules first: the lookup below must never find 'k' for 'k '.
    IF @p_kind IS NULL OR LEN(@p_kind) = 0
        THROW 50001, N'mibridge: kind is required', 1;
    IF @p_business_key IS NULL OR LEN(@p_business_key) = 0
        THROW 50001, N'mibridge: business_key is required', 1;
    IF UNICODE(@p_kind) IN (9, 10, 13, 32) OR UNICODE(RIGHT(@p_kind, 1)) IN (9, 10, 13, 32)
        THROW 50005, N'mibridge: kind must not start or end with a blank', 1;
    IF UNICODE(@p_business_key) IN (9, 10, 13, 32) OR UNICODE(RIGHT(@p_business_key, 1)) IN (9, 10, 13, 32)
        THROW 50005, N'mibridge: business_key must not start or end with a blank', 1;
    IF LEN(@p_kind COLLATE Latin1_General_100_CI_AS_SC) > 40
        THROW 50006, N'mibridge: kind is longer than 40 characters', 1;
    IF LEN(@p_business_key COLLATE Latin1_General_100_CI_AS_SC) > 64
        THROW 50006, N'mibridge: business_key is longer than 64 characters', 1;
    IF LEN(@p_serial_key COLLATE Latin1_General_100_CI_AS_SC) > 64
        THROW 50006, N'mibridge: serial_key is longer than 64 characters', 1;
    BEGIN TRY
        BEGIN TRANSACTION;
        SELECT @p_id = id, @old = payload
          FROM mi_outbox WITH (UPDLOCK, HOLDLOCK)
         WHERE kind = @p_kind AND business_key = @p_business_key;
        IF @p_id IS NULL
        BEGIN
            INSERT INTO mi_outbox (kind, business_key, serial_key, payload)
            VALUES (@p_kind, @p_business_key, COALESCE(@p_serial_key, @p_business_key), @p_payload);
            -- The INSTEAD OF trigger hides the identity from SCOPE_IDENTITY().
            SELECT @p_id = id FROM mi_outbox WHERE kind = @p_kind AND business_key = @p_business_key;
        END
        ELSE
        BEGIN
            -- The repeat is checked as the trigger would check it.
            IF @p_payload IS NULL OR ISJSON(@p_payload) = 0
                THROW 50002, N'mibridge: payload is not valid JSON', 1;
            EXEC mi_json_check @p_payload, @problem OUTPUT;
            IF @problem IS NOT NULL
                THROW 50007, @problem, 1;
            EXEC mi_json_same @old, @p_payload, @same OUTPUT;
            IF @same = 0
            BEGIN
                SET @msg = LEFT(CONCAT(N'mibridge: ', @p_kind, N' request ', @p_business_key,
                    N' already exists with a different payload (outbox id ', @p_id, N')'), 400);
                THROW 50010, @msg, 1;
            END;
        END;
        COMMIT TRANSACTION;
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0
            ROLLBACK TRANSACTION;
        THROW;
    END CATCH;
END;
GO

-- The HIS marks an inbox row as taken ('accepted') or refused ('rejected'):
--   EXEC mi_inbox_consume @p_id = 42, @p_ack = N'accepted';
-- Any other verdict, NULL included, is refused: nothing counts as accepted by
-- default. Compared byte for byte, length included ('accepted ' is refused).
-- A refused settlement is repaired by the daemon (refund/reversal), see docs/.
CREATE PROCEDURE mi_inbox_consume
    @p_id  BIGINT,
    @p_ack NVARCHAR(4000) = N'accepted'
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT ON;
    SET ANSI_WARNINGS ON;
    SET ARITHABORT ON;
    SET CONCAT_NULL_YIELDS_NULL ON;
    SET ANSI_PADDING ON;
    SET NUMERIC_ROUNDABORT OFF;
    DECLARE @msg NVARCHAR(400);
    IF @p_ack IS NULL OR DATALENGTH(@p_ack) <> 16
       OR @p_ack COLLATE Latin1_General_100_BIN2 NOT IN (N'accepted', N'rejected')
        THROW 50012, N'mibridge: the verdict must be ''accepted'' or ''rejected''', 1;
    UPDATE mi_inbox SET consumed_at = SYSUTCDATETIME(), his_ack = @p_ack
     WHERE id = @p_id AND consumed_at IS NULL;
    IF @@ROWCOUNT = 0
    BEGIN
        IF EXISTS (SELECT 1 FROM mi_inbox WHERE id = @p_id)
            SET @msg = CONCAT(N'mibridge: inbox row ', @p_id, N' was already consumed');
        ELSE
            SET @msg = CONCAT(N'mibridge: inbox row ', COALESCE(CAST(@p_id AS NVARCHAR(20)), N'NULL'),
                              N' does not exist');
        THROW 50011, @msg, 1;
    END;
END;
GO

-- Admin procedures (migration 005) ---------------------------------------
-- A held row goes back to work: to in_doubt when it stopped inside a call that
-- was not safe to repeat (query first, never a blind resend), else to pending.
--   EXEC mi_requeue @p_id = 42, @p_note = N'gateway fixed';
CREATE PROCEDURE mi_requeue
    @p_id    BIGINT,
    @p_note  NVARCHAR(4000),
    @p_actor NVARCHAR(4000) = NULL
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT ON;
    SET ANSI_WARNINGS ON;
    SET ARITHABORT ON;
    SET CONCAT_NULL_YIELDS_NULL ON;
    SET ANSI_PADDING ON;
    SET NUMERIC_ROUNDABORT OFF;
    DECLARE @msg NVARCHAR(2000);
    DECLARE @state NVARCHAR(16);
    DECLARE @actor NVARCHAR(64) = LEFT(COALESCE(NULLIF(LTRIM(RTRIM(@p_actor)), N''), ORIGINAL_LOGIN()), 64);
    IF @p_note IS NULL OR LTRIM(RTRIM(@p_note)) = N''
        THROW 50021, N'mibridge: a note is required: what was checked and decided', 1;
    BEGIN TRY
        BEGIN TRANSACTION;
        SELECT @state = state FROM mi_outbox WITH (UPDLOCK, ROWLOCK) WHERE id = @p_id;
        IF @state IS NULL
        BEGIN
            SET @msg = CONCAT(N'mibridge: outbox row ', COALESCE(CAST(@p_id AS NVARCHAR(20)), N'NULL'),
                              N' does not exist');
            THROW 50022, @msg, 1;
        END;
        IF @state <> N'held'
        BEGIN
            SET @msg = CONCAT(N'mibridge: outbox row ', @p_id, N' is ', @state, N'; only a held row can be requeued');
            THROW 50023, @msg, 1;
        END;
        UPDATE mi_outbox
           SET state = CASE WHEN current_call IS NOT NULL AND call_unsafe = 1 THEN N'in_doubt' ELSE N'pending' END,
               attempts = 0, next_attempt_at = SYSUTCDATETIME(), updated_at = SYSUTCDATETIME()
         WHERE id = @p_id AND state = N'held';
        INSERT INTO mi_audit (outbox_id, action, actor, note, db_login)
        VALUES (@p_id, N'requeue', @actor, LEFT(@p_note, 1000), ORIGINAL_LOGIN());
        COMMIT TRANSACTION;
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0
            ROLLBACK TRANSACTION;
        THROW;
    END CATCH;
END;
GO

-- A person settled a held row by hand: it ends 'resolved', the HIS gets a
-- 'manual' inbox row with the note, its secrets go.
CREATE PROCEDURE mi_resolve
    @p_id    BIGINT,
    @p_note  NVARCHAR(4000),
    @p_actor NVARCHAR(4000) = NULL
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT ON;
    SET ANSI_WARNINGS ON;
    SET ARITHABORT ON;
    SET CONCAT_NULL_YIELDS_NULL ON;
    SET ANSI_PADDING ON;
    SET NUMERIC_ROUNDABORT OFF;
    DECLARE @msg NVARCHAR(2000);
    DECLARE @state NVARCHAR(16);
    DECLARE @actor NVARCHAR(64) = LEFT(COALESCE(NULLIF(LTRIM(RTRIM(@p_actor)), N''), ORIGINAL_LOGIN()), 64);
    IF @p_note IS NULL OR LTRIM(RTRIM(@p_note)) = N''
        THROW 50021, N'mibridge: a note is required: what was checked and decided', 1;
    BEGIN TRY
        BEGIN TRANSACTION;
        SELECT @state = state FROM mi_outbox WITH (UPDLOCK, ROWLOCK) WHERE id = @p_id;
        IF @state IS NULL
        BEGIN
            SET @msg = CONCAT(N'mibridge: outbox row ', COALESCE(CAST(@p_id AS NVARCHAR(20)), N'NULL'),
                              N' does not exist');
            THROW 50022, @msg, 1;
        END;
        IF @state <> N'held'
        BEGIN
            SET @msg = CONCAT(N'mibridge: outbox row ', @p_id, N' is ', @state, N'; only a held row can be resolved');
            THROW 50023, @msg, 1;
        END;
        INSERT INTO mi_inbox (outbox_id, kind, business_key, result_type, outcome, error_code, error_message,
                              result_json)
        SELECT id, kind, business_key, N'manual', N'resolved', N'RESOLVED_BY_HAND', LEFT(@p_note, 1000),
               (SELECT @p_note AS note, @actor AS resolved_by FOR JSON PATH, WITHOUT_ARRAY_WRAPPER)
          FROM mi_outbox WHERE id = @p_id;
        UPDATE mi_outbox SET state = N'resolved', finished_at = SYSUTCDATETIME(), updated_at = SYSUTCDATETIME(),
               current_call = NULL, call_unsafe = 0
         WHERE id = @p_id AND state = N'held';
        DELETE FROM mi_secret WHERE outbox_id = @p_id;
        INSERT INTO mi_audit (outbox_id, action, actor, note, db_login)
        VALUES (@p_id, N'resolve', @actor, LEFT(@p_note, 1000), ORIGINAL_LOGIN());
        COMMIT TRANSACTION;
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0
            ROLLBACK TRANSACTION;
        THROW;
    END CATCH;
END;
GO

-- A request nobody wants any more, before it made any call that may have moved
-- money: a pending or held row with no journalled unsafe call ends 'failed', and
-- the HIS gets a 'cancelled' inbox row (CANCELLED_BY_HAND) with the note.
CREATE PROCEDURE mi_cancel
    @p_id    BIGINT,
    @p_note  NVARCHAR(4000),
    @p_actor NVARCHAR(4000) = NULL
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT ON;
    SET ANSI_WARNINGS ON;
    SET ARITHABORT ON;
    SET CONCAT_NULL_YIELDS_NULL ON;
    SET ANSI_PADDING ON;
    SET NUMERIC_ROUNDABORT OFF;
    DECLARE @msg NVARCHAR(2000);
    DECLARE @state NVARCHAR(16);
    DECLARE @actor NVARCHAR(64) = LEFT(COALESCE(NULLIF(LTRIM(RTRIM(@p_actor)), N''), ORIGINAL_LOGIN()), 64);
    IF @p_note IS NULL OR LTRIM(RTRIM(@p_note)) = N''
        THROW 50021, N'mibridge: a note is required: what was checked and decided', 1;
    BEGIN TRY
        BEGIN TRANSACTION;
        SELECT @state = state FROM mi_outbox WITH (UPDLOCK, ROWLOCK) WHERE id = @p_id;
        IF @state IS NULL
        BEGIN
            SET @msg = CONCAT(N'mibridge: outbox row ', COALESCE(CAST(@p_id AS NVARCHAR(20)), N'NULL'),
                              N' does not exist');
            THROW 50022, @msg, 1;
        END;
        IF @state = N'running'
        BEGIN
            SET @msg = CONCAT(N'mibridge: outbox row ', @p_id, N' is running (a worker has it); try again when it waits');
            THROW 50024, @msg, 1;
        END;
        IF @state NOT IN (N'pending', N'held')
        BEGIN
            SET @msg = CONCAT(N'mibridge: outbox row ', @p_id, N' is ', @state,
                              N'; only a pending or held row can be cancelled');
            THROW 50023, @msg, 1;
        END;
        IF EXISTS (SELECT 1 FROM mi_journal WHERE outbox_id = @p_id AND COALESCE(unsafe, 1) = 1)
        BEGIN
            SET @msg = LEFT(CONCAT(N'mibridge: outbox row ', @p_id, N' made a call that may have moved money (',
                              (SELECT STUFF((SELECT DISTINCT N', ' + interface FROM mi_journal
                                              WHERE outbox_id = @p_id AND COALESCE(unsafe, 1) = 1
                                                FOR XML PATH(''), TYPE).value(N'.', N'NVARCHAR(MAX)'), 1, 2, N'')),
                              N'); it cannot be cancelled: let its flow finish or reverse it, or resolve it by hand once it is held'), 2000);
            THROW 50025, @msg, 1;
        END;
        INSERT INTO mi_inbox (outbox_id, kind, business_key, result_type, outcome, error_code, error_message,
                              result_json)
        SELECT id, kind, business_key, N'cancelled', N'failed', N'CANCELLED_BY_HAND', LEFT(@p_note, 1000),
               (SELECT @actor AS cancelled_by, @p_note AS note FOR JSON PATH, WITHOUT_ARRAY_WRAPPER)
          FROM mi_outbox WHERE id = @p_id;
        UPDATE mi_outbox SET state = N'failed', finished_at = SYSUTCDATETIME(), updated_at = SYSUTCDATETIME(),
               current_call = NULL, call_unsafe = 0, lease_owner = NULL, lease_expires_at = NULL,
               last_error_code = N'CANCELLED_BY_HAND', last_error_message = LEFT(@p_note, 1000)
         WHERE id = @p_id AND state IN (N'pending', N'held');
        DELETE FROM mi_secret WHERE outbox_id = @p_id;
        INSERT INTO mi_audit (outbox_id, action, actor, note, db_login)
        VALUES (@p_id, N'cancel', @actor, LEFT(@p_note, 1000), ORIGINAL_LOGIN());
        COMMIT TRANSACTION;
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0
            ROLLBACK TRANSACTION;
        THROW;
    END CATCH;
END;
GO

-- Views for DBAs (times are UTC) -------------------------------------------
-- Why a pending row waits (waits_for): serial_key (behind waits_behind_id, the
-- oldest unfinished request with the same serial key), query (a call in doubt),
-- his, patient, backoff, scheduled, worker; see sql/postgresql/install.sql.
-- last_error_* only while they belong to the current step's tries.
CREATE VIEW mi_v_pending AS
SELECT p.id, p.kind, p.business_key, p.serial_key, p.state, p.step, p.attempts, p.next_attempt_at, p.created_at,
       DATEDIFF_BIG(SECOND, p.created_at, SYSUTCDATETIME()) AS age_seconds,
       CASE WHEN p.attempts > 0 THEN p.last_error_code END AS last_error_code,
       CASE WHEN p.attempts > 0 THEN p.last_error_message END AS last_error_message,
       CAST(CASE WHEN p.waits_behind_id IS NOT NULL THEN N'serial_key'
                 WHEN p.state = N'in_doubt' THEN N'query'
                 WHEN LEFT(p.step, 9) = N'await_his' THEN N'his'
                 WHEN p.step = N'await_payment' OR LEFT(p.step, 13) = N'await_patient' THEN N'patient'
                 WHEN p.next_attempt_at > SYSUTCDATETIME() AND p.attempts > 0 THEN N'backoff'
                 WHEN p.next_attempt_at > SYSUTCDATETIME() THEN N'scheduled'
                 ELSE N'worker' END AS NVARCHAR(16)) AS waits_for,
       p.waits_behind_id
  FROM (SELECT o.id, o.kind, o.business_key, o.serial_key, o.state, o.step, o.attempts, o.next_attempt_at,
               o.created_at, o.last_error_code, o.last_error_message,
               (SELECT MIN(x.id) FROM mi_outbox x
                 WHERE x.serial_key = o.serial_key AND x.id < o.id
                   AND x.state NOT IN (N'done', N'failed', N'resolved')) AS waits_behind_id
          FROM mi_outbox o WHERE o.state IN (N'pending', N'in_doubt')) p;
GO

CREATE VIEW mi_v_in_flight AS
SELECT id, kind, business_key, step, lease_owner, lease_expires_at, current_call, attempts, updated_at,
       DATEDIFF_BIG(SECOND, created_at, SYSUTCDATETIME()) AS age_seconds
  FROM mi_outbox WHERE state = N'running';
GO

CREATE VIEW mi_v_held AS
SELECT id, kind, business_key, serial_key, step, attempts, last_error_code AS reason_code,
       last_error_message AS reason, updated_at,
       DATEDIFF_BIG(SECOND, created_at, SYSUTCDATETIME()) AS age_seconds, current_call
  FROM mi_outbox WHERE state = N'held';
GO

CREATE VIEW mi_v_failed AS
SELECT id, kind, business_key, step, finished_at, last_error_code, last_error_message,
       DATEDIFF_BIG(SECOND, created_at, SYSUTCDATETIME()) AS age_seconds
  FROM mi_outbox WHERE state = N'failed';
GO

-- "Today" is the server's local day: its local midnight, converted to UTC.
-- The amount is that of each request's latest inbox row. SQL Server does not
-- promise the order of a view's rows to an outer query (the TOP ... ORDER BY here
-- is how a view may name one); add ORDER BY kind, state where the order matters.
CREATE VIEW mi_v_today AS
SELECT TOP (9223372036854775807) o.kind, o.state, COUNT(*) AS requests, SUM(i.total_amount) AS total_amount
  FROM mi_outbox o
  OUTER APPLY (SELECT TOP (1) x.total_amount FROM mi_inbox x WHERE x.outbox_id = o.id
                ORDER BY x.id DESC) i
 WHERE o.created_at >= DATEADD(MINUTE, -DATEPART(TZOFFSET, SYSDATETIMEOFFSET()),
                               CAST(CAST(SYSDATETIME() AS DATE) AS DATETIME2(6)))
 GROUP BY o.kind, o.state
 ORDER BY o.kind, o.state;
GO

-- Migration 003: mi_secret, the daemon's own store of tokens and ID numbers.
-- A flow's secrets (the mobile-pay payToken, a face-identified patient's ID number,
-- name, ecToken and authNo) live here instead of in mi_outbox.flow_data, which the HIS
-- and DBAs read. Only the daemon reads or writes it (grants.sql gives the HIS nothing
-- on it). A row's secrets go when the request is final, except what a later request
-- needs (a payment's payToken for its refunds and for a late notice's check), and with
-- the row when it is purged.
CREATE TABLE mi_secret (
    outbox_id        BIGINT          NOT NULL,
    name             NVARCHAR(128)   COLLATE Latin1_General_100_BIN2 NOT NULL,
    value            NVARCHAR(4000)  NOT NULL,
    created_at       DATETIME2(6)    NOT NULL DEFAULT SYSUTCDATETIME(),
    CONSTRAINT mi_secret_pk PRIMARY KEY (outbox_id, name),
    CONSTRAINT mi_secret_outbox_fk FOREIGN KEY (outbox_id) REFERENCES mi_outbox (id)
);
-- Migration 004: the order book and daily reconciliation (docs/reconciliation.md).
-- mi_order: one row per payment, kept by the daemon from the inbox rows it writes, in the
-- same transaction (bridge/db/orderbook.py); mi_order_refund: its refunds, reversals and
-- cancellations. Purge never deletes either. mi_recon_run / mi_recon_item / mi_channel_bill:
-- the daily reconciliation; views show the latest completed run of each day and platform.
-- Days are yyyy-MM-dd in China time (UTC+8), the day the platforms' statements use.
CREATE TABLE mi_order (
    id               BIGINT        IDENTITY(1,1) NOT NULL,
    platform         NVARCHAR(16)  NOT NULL,
    channel          NVARCHAR(16)  NOT NULL,
    kind             NVARCHAR(80)  COLLATE Latin1_General_100_BIN2 NOT NULL,
    business_key     NVARCHAR(128) COLLATE Latin1_General_100_BIN2 NOT NULL,
    outbox_id        BIGINT        NOT NULL,
    inbox_id         BIGINT,
    platform_order_id NVARCHAR(128) COLLATE Latin1_General_100_BIN2 NOT NULL,
    settlement_id    NVARCHAR(128) COLLATE Latin1_General_100_BIN2,
    mix_trade_no     NVARCHAR(128) COLLATE Latin1_General_100_BIN2,
    out_trade_no     NVARCHAR(128) COLLATE Latin1_General_100_BIN2,
    trade_no         NVARCHAR(128) COLLATE Latin1_General_100_BIN2,
    psn_no           NVARCHAR(80)  COLLATE Latin1_General_100_BIN2,
    mdtrt_id         NVARCHAR(64),
    insutype         NVARCHAR(12),
    clr_type         NVARCHAR(12),
    setl_optins      NVARCHAR(12),
    ref_no           NVARCHAR(64),
    term_seq_no      NVARCHAR(64),
    status           NVARCHAR(16)  NOT NULL DEFAULT N'paid',
    total_amount     DECIMAL(16,2) NOT NULL,
    fund_amount      DECIMAL(16,2) NOT NULL,
    account_amount   DECIMAL(16,2) NOT NULL,
    cash_amount      DECIMAL(16,2) NOT NULL,
    refunded_total   DECIMAL(16,2) NOT NULL DEFAULT 0,
    refunded_fund    DECIMAL(16,2) NOT NULL DEFAULT 0,
    refunded_account DECIMAL(16,2) NOT NULL DEFAULT 0,
    refunded_cash    DECIMAL(16,2) NOT NULL DEFAULT 0,
    refund_count     INT           NOT NULL DEFAULT 0,
    settle_day       NVARCHAR(10)  NOT NULL,
    settled_at       DATETIME2(6)  NOT NULL DEFAULT SYSUTCDATETIME(),
    last_refund_at   DATETIME2(6),
    updated_at       DATETIME2(6)  NOT NULL DEFAULT SYSUTCDATETIME(),
    CONSTRAINT mi_order_pk PRIMARY KEY (id),
    CONSTRAINT mi_order_key UNIQUE (platform_order_id, platform),
    CONSTRAINT mi_order_status_ck CHECK (status IN (N'paid',N'partly_refunded',N'refunded',N'reversed',N'cancelled'))
);
CREATE INDEX mi_order_day_ix ON mi_order (settle_day, platform, id);
CREATE INDEX mi_order_business_ix ON mi_order (business_key);
CREATE INDEX mi_order_trade_ix ON mi_order (out_trade_no);

CREATE TABLE mi_order_refund (
    id               BIGINT        IDENTITY(1,1) NOT NULL,
    order_ref        BIGINT,
    platform         NVARCHAR(16)  NOT NULL,
    platform_order_id NVARCHAR(128) COLLATE Latin1_General_100_BIN2 NOT NULL,
    refund_type      NVARCHAR(16)  NOT NULL,
    kind             NVARCHAR(80)  COLLATE Latin1_General_100_BIN2 NOT NULL,
    business_key     NVARCHAR(128) COLLATE Latin1_General_100_BIN2 NOT NULL,
    outbox_id        BIGINT        NOT NULL,
    inbox_id         BIGINT,
    refund_ref       NVARCHAR(128) COLLATE Latin1_General_100_BIN2,
    out_refund_no    NVARCHAR(128) COLLATE Latin1_General_100_BIN2,
    state            NVARCHAR(16)  NOT NULL DEFAULT N'booked',
    total_amount     DECIMAL(16,2) NOT NULL,
    fund_amount      DECIMAL(16,2) NOT NULL,
    account_amount   DECIMAL(16,2) NOT NULL,
    cash_amount      DECIMAL(16,2) NOT NULL,
    refund_day       NVARCHAR(10)  NOT NULL,
    refunded_at      DATETIME2(6)  NOT NULL DEFAULT SYSUTCDATETIME(),
    CONSTRAINT mi_order_refund_pk PRIMARY KEY (id),
    CONSTRAINT mi_order_refund_key UNIQUE (outbox_id, refund_type, platform_order_id),
    CONSTRAINT mi_order_refund_type_ck CHECK (refund_type IN (N'refund',N'reversal',N'cancellation')),
    CONSTRAINT mi_order_refund_state_ck CHECK (state IN (N'booked',N'unmatched'))
);
CREATE INDEX mi_order_refund_order_ix ON mi_order_refund (order_ref);
CREATE INDEX mi_order_refund_day_ix ON mi_order_refund (refund_day, platform, id);
CREATE INDEX mi_order_refund_platform_ix ON mi_order_refund (platform_order_id);

-- One row per reconciliation run. active_key is "<day>:<platform>" while the run is running
-- and "run:<id>" after: the unique key lets one run per day and platform run at a time.
CREATE TABLE mi_recon_run (
    id               BIGINT        IDENTITY(1,1) NOT NULL,
    recon_day        NVARCHAR(10)  NOT NULL,
    platform         NVARCHAR(16)  NOT NULL,
    state            NVARCHAR(16)  NOT NULL DEFAULT N'running',
    active_key       NVARCHAR(80)  COLLATE Latin1_General_100_BIN2 NOT NULL,
    owner            NVARCHAR(80)  NOT NULL,
    step             NVARCHAR(40),
    progress_done    INT           NOT NULL DEFAULT 0,
    progress_total   INT,
    balanced         SMALLINT,
    items_total      INT           NOT NULL DEFAULT 0,
    items_differ     INT           NOT NULL DEFAULT 0,
    digest           NVARCHAR(64),
    report_outbox_id BIGINT,
    detail_json      NVARCHAR(MAX),
    error_message    NVARCHAR(2000),
    started_at       DATETIME2(6)  NOT NULL DEFAULT SYSUTCDATETIME(),
    heartbeat_at     DATETIME2(6)  NOT NULL DEFAULT SYSUTCDATETIME(),
    finished_at      DATETIME2(6),
    CONSTRAINT mi_recon_run_pk PRIMARY KEY (id),
    CONSTRAINT mi_recon_run_active UNIQUE (active_key),
    CONSTRAINT mi_recon_run_state_ck CHECK (state IN (N'running',N'done',N'failed',N'abandoned'))
);
CREATE INDEX mi_recon_run_day_ix ON mi_recon_run (recon_day, platform, state);

-- One row per order (setl_id, payOrdId, or a channel's out_trade_no) and leg of a run.
CREATE TABLE mi_recon_item (
    id               BIGINT        IDENTITY(1,1) NOT NULL,
    run_id           BIGINT        NOT NULL,
    order_key        NVARCHAR(128) COLLATE Latin1_General_100_BIN2 NOT NULL,
    leg              NVARCHAR(16)  NOT NULL,
    diff_class       NVARCHAR(16)  NOT NULL,
    order_ref        BIGINT,
    business_key     NVARCHAR(128) COLLATE Latin1_General_100_BIN2,
    channel          NVARCHAR(16),
    channel_ref      NVARCHAR(128) COLLATE Latin1_General_100_BIN2,
    hospital_amount  DECIMAL(16,2),
    platform_amount  DECIMAL(16,2),
    channel_amount   DECIMAL(16,2),
    hospital_state   NVARCHAR(40),
    platform_state   NVARCHAR(40),
    source           NVARCHAR(16)  NOT NULL,
    note             NVARCHAR(2000),
    CONSTRAINT mi_recon_item_pk PRIMARY KEY (id),
    CONSTRAINT mi_recon_item_key UNIQUE (run_id, order_key, leg),
    CONSTRAINT mi_recon_item_run_fk FOREIGN KEY (run_id) REFERENCES mi_recon_run (id),
    CONSTRAINT mi_recon_item_class_ck CHECK (diff_class IN (N'balanced',N'hospital_only',N'platform_only',
                                                            N'channel_only',N'amount_differs',N'unchecked'))
);
CREATE INDEX mi_recon_item_ref_ix ON mi_recon_item (run_id, channel_ref);

-- The WeChat / Alipay bill rows a run loaded (+ payments, - refunds, yuan).
CREATE TABLE mi_channel_bill (
    id               BIGINT        IDENTITY(1,1) NOT NULL,
    run_id           BIGINT        NOT NULL,
    channel          NVARCHAR(16)  NOT NULL,
    bill_day         NVARCHAR(10)  NOT NULL,
    line_no          INT           NOT NULL,
    row_type         NVARCHAR(16)  NOT NULL,
    out_trade_no     NVARCHAR(128) COLLATE Latin1_General_100_BIN2 NOT NULL,
    trade_no         NVARCHAR(128) COLLATE Latin1_General_100_BIN2,
    out_refund_no    NVARCHAR(128) COLLATE Latin1_General_100_BIN2,
    refund_id        NVARCHAR(128) COLLATE Latin1_General_100_BIN2,
    amount           DECIMAL(16,2) NOT NULL,
    trade_state      NVARCHAR(32),
    trade_time       NVARCHAR(19),
    CONSTRAINT mi_channel_bill_pk PRIMARY KEY (id),
    CONSTRAINT mi_channel_bill_line UNIQUE (run_id, channel, line_no),
    CONSTRAINT mi_channel_bill_run_fk FOREIGN KEY (run_id) REFERENCES mi_recon_run (id)
);
CREATE INDEX mi_channel_bill_trade_ix ON mi_channel_bill (run_id, out_trade_no);
GO
-- The order book: one row per payment, its refunds summed per leg, the latest refund request.
CREATE VIEW mi_v_orders AS
SELECT o.id AS order_id, o.platform, o.channel, o.kind, o.business_key, o.platform_order_id, o.settlement_id,
       o.mix_trade_no, o.out_trade_no, o.trade_no, o.status,
       o.total_amount, o.fund_amount, o.account_amount, o.cash_amount,
       o.refunded_total, o.refunded_fund, o.refunded_account, o.refunded_cash,
       o.total_amount - o.refunded_total AS net_amount, o.refund_count,
       (SELECT r.business_key FROM mi_order_refund r
         WHERE r.id = (SELECT MAX(x.id) FROM mi_order_refund x WHERE x.order_ref = o.id)) AS last_refund_key,
       o.last_refund_at, o.settle_day, o.settled_at, o.psn_no, o.mdtrt_id, o.insutype, o.clr_type,
       o.setl_optins, o.ref_no, o.term_seq_no, o.outbox_id, o.updated_at
  FROM mi_order o
GO
CREATE VIEW mi_v_order_refunds AS
SELECT r.id AS refund_id, r.order_ref AS order_id, o.business_key AS payment_key, r.platform,
       r.platform_order_id, r.refund_type, r.kind, r.business_key, r.refund_ref, r.out_refund_no, r.state,
       r.total_amount, r.fund_amount, r.account_amount, r.cash_amount, r.refund_day, r.refunded_at, r.outbox_id
  FROM mi_order_refund r LEFT JOIN mi_order o ON o.id = r.order_ref
GO
-- The latest completed run of each day and platform, one row per order and leg.
CREATE VIEW mi_v_reconciliation AS
SELECT r.recon_day, r.platform, r.id AS run_id, i.order_key, i.business_key, i.channel, i.channel_ref, i.leg,
       i.diff_class, i.hospital_amount, i.platform_amount, i.channel_amount, i.hospital_state,
       i.platform_state, i.source, i.note, i.order_ref AS order_id
  FROM mi_recon_item i JOIN mi_recon_run r ON r.id = i.run_id
 WHERE r.state = N'done'
   AND r.id = (SELECT MAX(x.id) FROM mi_recon_run x
                WHERE x.recon_day = r.recon_day AND x.platform = r.platform AND x.state = N'done')
GO
-- What a person must look at: every difference of the latest completed runs, with what to do.
CREATE VIEW mi_v_recon_review AS
SELECT v.recon_day, v.platform, v.run_id, v.order_key, v.business_key, v.channel, v.channel_ref, v.leg,
       v.diff_class, v.hospital_amount, v.platform_amount, v.channel_amount, v.hospital_state,
       v.platform_state, v.source, v.note, v.order_id,
       CASE v.diff_class
           WHEN N'hospital_only' THEN N'booked by the hospital, missing at the platform or channel: check there before billing again'
           WHEN N'platform_only' THEN N'booked at the platform, unknown to the hospital: find the request, bill or refund it'
           WHEN N'channel_only' THEN N'money moved in the channel, unknown to the hospital: find the order, refund or book it'
           WHEN N'amount_differs' THEN N'amounts differ: compare the columns, correct the wrong side'
           ELSE N'not compared: see the note, then reconcile again'
       END AS action
  FROM mi_v_reconciliation v
 WHERE v.diff_class <> N'balanced'
GO
-- The daily check: the latest finished run of each day and platform.
CREATE VIEW mi_v_recon_days AS
SELECT r.recon_day, r.platform, r.id AS run_id, r.state, r.balanced, r.items_total, r.items_differ,
       r.started_at, r.finished_at, r.error_message
  FROM mi_recon_run r
 WHERE r.id = (SELECT MAX(x.id) FROM mi_recon_run x
                WHERE x.recon_day = r.recon_day AND x.platform = r.platform AND x.state IN (N'done', N'failed'))
GO

-- Migration 006: mi_insured_region, the insured regions (参保地) the hospital supports, and
-- the view the HIS and the mini-program backend read (enabled regions only). Filled by the
-- daemon from the config, from a CSV the DBA loads (mibridge regions load) and, where the site
-- turns it on, from the platform's 1901 dictionary; `source` names who set the row last, and a
-- refresh from the platform never changes a row a person set (docs/identity.md). on_* say on
-- which channel the region is offered; insutypes lists the insurance types accepted there,
-- comma-separated (NULL = every type).
-- The code is a key: Latin1_General_100_BIN2, twice its characters wide; the digit pattern
-- compares it in that binary collation (no full-width digits).
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

INSERT INTO mi_schema_version (version, name) VALUES (1, N'001_baseline'), (2, N'002_hardening'), (3, N'003_secrets'),
       (4, N'004_reconciliation'), (5, N'005_admin'), (6, N'006_insured_region'),
       (7, N'007_identity');
GO
