-- mibridge: install into a SQL Server (2016+: ISJSON, JSON_VALUE, DATEDIFF_BIG,
-- DROP ... IF EXISTS) HIS database.
-- Run by hand:   sqlcmd -S dbhost -d hisdb -b -I -i sql/sqlserver/install.sql
-- or:            mibridge db install --url mssql://dba@dbhost:1433/hisdb
-- Creates only objects whose names start with mi_, in your default schema
-- (usually dbo); sql/sqlserver/uninstall.sql removes them. The states are
-- explained in sql/postgresql/install.sql and docs/.
--
-- Times are DATETIME2 in UTC from SYSUTCDATETIME(), the server's clock; every
-- time the daemon compares (leases, retries) is computed by the server.
-- Text columns are NVARCHAR: the daemon's driver sends Unicode parameters, and
-- an NVARCHAR parameter compared with a VARCHAR column would turn every index
-- seek into a scan. Key columns use the database's default collation: with a
-- case-insensitive collation 'inv-1' and 'INV-1' are the same business key.
--
-- The filtered indexes below need ANSI_NULLS and QUOTED_IDENTIFIER ON in every
-- session that writes mi_outbox/mi_inbox (the default for ODBC, OLE DB,
-- JDBC and .NET; sqlcmd needs -I). A legacy HIS connection with
-- QUOTED_IDENTIFIER OFF gets "INSERT failed because the following SET options
-- have incorrect settings": turn it on in that connection.
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
GO

-- Outbox: one row per request the HIS makes (states: see the CHECK below and
-- sql/postgresql/install.sql).
CREATE TABLE mi_outbox (
    id               BIGINT        IDENTITY(1,1) NOT NULL,
    kind             NVARCHAR(40)  NOT NULL,
    business_key     NVARCHAR(64)  NOT NULL,
    serial_key       NVARCHAR(64)  NOT NULL,
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
    last_error_message NVARCHAR(1000),
    CONSTRAINT mi_outbox_pk PRIMARY KEY (id),
    CONSTRAINT mi_outbox_kind_key UNIQUE (kind, business_key),
    CONSTRAINT mi_outbox_state_ck CHECK (state IN (N'pending',N'running',N'in_doubt',N'held',N'done',N'failed',N'resolved')),
    CONSTRAINT mi_outbox_key_ck CHECK (LEN(business_key) > 0 AND LEN(kind) > 0)
);
-- Claim reads only open rows: filtered indexes keep it flat however many
-- finished rows the table holds. The daemon's queries repeat these predicates
-- literally (a filtered index is used only then; do not turn on forced
-- parameterization for this database, it hides the literals).
CREATE INDEX mi_outbox_ready_ix ON mi_outbox (next_attempt_at, id)
    WHERE state IN (N'pending', N'in_doubt');
CREATE INDEX mi_outbox_serial_open_ix ON mi_outbox (serial_key, id)
    WHERE state IN (N'pending', N'running', N'in_doubt', N'held');
CREATE INDEX mi_outbox_lease_ix ON mi_outbox (lease_expires_at)
    WHERE state = N'running';
CREATE INDEX mi_outbox_finished_ix ON mi_outbox (finished_at)
    WHERE finished_at IS NOT NULL;

-- Inbox: results for the HIS. The HIS reads rows WHERE consumed_at IS NULL and
-- marks each one with EXEC mi_inbox_consume @p_id = ..., @p_ack = N'accepted' | N'rejected'.
CREATE TABLE mi_inbox (
    id               BIGINT        IDENTITY(1,1) NOT NULL,
    outbox_id        BIGINT        NOT NULL,
    kind             NVARCHAR(40)  NOT NULL,
    business_key     NVARCHAR(64)  NOT NULL,
    result_type      NVARCHAR(40)  NOT NULL,
    outcome          NVARCHAR(16)  NOT NULL,
    error_code       NVARCHAR(40),
    error_message    NVARCHAR(1000),
    order_id         NVARCHAR(64),
    settlement_id    NVARCHAR(64),
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
CREATE INDEX mi_inbox_unconsumed_ix ON mi_inbox (id) WHERE consumed_at IS NULL;
CREATE INDEX mi_inbox_outbox_ix ON mi_inbox (outbox_id);

-- Call journal: one row per remote call, written BEFORE the call is sent.
CREATE TABLE mi_journal (
    id               BIGINT        IDENTITY(1,1) NOT NULL,
    msg_id           NVARCHAR(64)  NOT NULL,
    outbox_id        BIGINT        NOT NULL,
    step             NVARCHAR(40)  NOT NULL,
    interface        NVARCHAR(40)  NOT NULL,
    request_masked   NVARCHAR(MAX),
    response_masked  NVARCHAR(MAX),
    http_status      INT,
    started_at       DATETIME2(6)  NOT NULL DEFAULT SYSUTCDATETIME(),
    ended_at         DATETIME2(6),
    outcome          NVARCHAR(16),
    error_message    NVARCHAR(1000),
    CONSTRAINT mi_journal_pk PRIMARY KEY (id),
    CONSTRAINT mi_journal_msg_uq UNIQUE (msg_id),
    CONSTRAINT mi_journal_outbox_fk FOREIGN KEY (outbox_id) REFERENCES mi_outbox (id),
    CONSTRAINT mi_journal_outcome_ck CHECK (outcome IS NULL OR outcome IN (N'ok',N'rejected',N'unknown'))
);
CREATE INDEX mi_journal_outbox_ix ON mi_journal (outbox_id);

-- Insurance identity written back for the HIS (one row per HIS patient).
CREATE TABLE mi_identity (
    his_patient_id   NVARCHAR(64)  NOT NULL,
    psn_no           NVARCHAR(40)  NOT NULL,
    insuplc_admdvs   NVARCHAR(12),
    insutype         NVARCHAR(12),
    benefit          NVARCHAR(40),
    psn_cert_type    NVARCHAR(8),
    source_outbox_id BIGINT,
    updated_at       DATETIME2(6)  NOT NULL DEFAULT SYSUTCDATETIME(),
    CONSTRAINT mi_identity_pk PRIMARY KEY (his_patient_id)
);

-- Audit trail of every human action (requeue, resolve) and repair.
CREATE TABLE mi_audit (
    id               BIGINT        IDENTITY(1,1) NOT NULL,
    outbox_id        BIGINT        NOT NULL,
    action           NVARCHAR(40)  NOT NULL,
    actor            NVARCHAR(64)  NOT NULL,
    note             NVARCHAR(1000),
    at               DATETIME2(6)  NOT NULL DEFAULT SYSUTCDATETIME(),
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
    interface        NVARCHAR(16)  NOT NULL,
    notice_key       NVARCHAR(64)  NOT NULL,
    business_key     NVARCHAR(64),
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

-- Validation that holds however rows arrive (mi_enqueue or a plain INSERT, of
-- one row or many, from an HIS trigger): bad input is refused to the HIS with
-- error 50001..50004 ('mibridge: ...'), the HIS's transaction is rolled back
-- and nothing is inserted. An INSTEAD OF trigger, because it must fill in an
-- omitted serial_key before the NOT NULL constraint is checked. Only kind,
-- business_key, serial_key and payload are taken from the INSERT; every other
-- column starts at its default (the daemon owns them). SCOPE_IDENTITY() is
-- NULL after an INSERT through this trigger: read the id back by
-- (kind, business_key), or call mi_enqueue.
-- No regular expressions in T-SQL: an amount is refused when it is empty, has a
-- character other than a digit or '.', has no digit before the '.', has two
-- '.', ends with '.', or has more than 2 decimals.
CREATE TRIGGER mi_outbox_validate_tg ON mi_outbox
INSTEAD OF INSERT
AS
BEGIN
    SET NOCOUNT ON;
    IF EXISTS (SELECT 1 FROM inserted WHERE business_key IS NULL OR LEN(business_key) = 0)
        THROW 50001, N'mibridge: business_key is required', 1;
    IF EXISTS (SELECT 1 FROM inserted WHERE kind IS NULL OR LEN(kind) = 0)
        THROW 50001, N'mibridge: kind is required', 1;
    IF EXISTS (SELECT 1 FROM inserted WHERE payload IS NULL OR ISJSON(payload) = 0)
        THROW 50002, N'mibridge: payload is not valid JSON', 1;
    -- Valid JSON whose first character after blanks is '{' is an object.
    IF EXISTS (SELECT 1 FROM inserted
                WHERE SUBSTRING(payload, PATINDEX(N'%[^ ' + NCHAR(9) + NCHAR(10) + NCHAR(13) + N']%', payload), 1) <> N'{')
        THROW 50003, N'mibridge: payload must be a JSON object', 1;
    -- JSON_VALUE gives the text of a scalar (NULL for JSON null or a missing
    -- key); JSON_QUERY gives an object or array, which is not an amount either.
    IF EXISTS (SELECT 1 FROM inserted
                CROSS APPLY (SELECT JSON_VALUE(payload, N'$.total_amount') AS v,
                                    JSON_QUERY(payload, N'$.total_amount') AS doc) t
                WHERE t.doc IS NOT NULL
                   OR (t.v IS NOT NULL
                       AND (t.v = N'' OR t.v LIKE N'%[^0-9.]%' OR t.v LIKE N'.%' OR t.v LIKE N'%.'
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
-- (a retried HIS transaction is harmless); with a different payload it is an
-- error (50010). SQL Server before 2022 has no JSON equality, so "the same
-- payload" means the same text, compared exactly (binary collation, so case
-- counts): a retry must send the same document.
-- UPDLOCK, HOLDLOCK lock the key (or the gap where it would go) until the
-- transaction ends, so two concurrent calls for one key cannot both insert.
CREATE PROCEDURE mi_enqueue
    @p_kind         NVARCHAR(40),
    @p_business_key NVARCHAR(64),
    @p_serial_key   NVARCHAR(64),
    @p_payload      NVARCHAR(MAX),
    @p_id           BIGINT OUTPUT
AS
BEGIN
    SET NOCOUNT ON;
    DECLARE @old NVARCHAR(MAX);
    SET @p_id = NULL;
    SELECT @p_id = id, @old = payload
      FROM mi_outbox WITH (UPDLOCK, HOLDLOCK)
     WHERE kind = @p_kind AND business_key = @p_business_key;
    IF @p_id IS NULL
    BEGIN
        INSERT INTO mi_outbox (kind, business_key, serial_key, payload)
        VALUES (@p_kind, @p_business_key, COALESCE(@p_serial_key, @p_business_key), @p_payload);
        -- The INSTEAD OF trigger hides the identity from SCOPE_IDENTITY().
        SELECT @p_id = id FROM mi_outbox WHERE kind = @p_kind AND business_key = @p_business_key;
        RETURN;
    END;
    IF @p_payload IS NULL OR @old COLLATE Latin1_General_100_BIN2 <> @p_payload COLLATE Latin1_General_100_BIN2
       OR DATALENGTH(@old) <> DATALENGTH(@p_payload)
    BEGIN
        DECLARE @msg NVARCHAR(400) = CONCAT(N'mibridge: ', @p_kind, N' request ', @p_business_key,
            N' already exists with a different payload (outbox id ', @p_id, N')');
        THROW 50010, @msg, 1;
    END;
END;
GO

-- The HIS marks an inbox row as taken ('accepted') or refused ('rejected'):
--   EXEC mi_inbox_consume @p_id = 42, @p_ack = N'accepted';
-- A refused settlement is repaired by the daemon (refund/reversal), see docs/.
CREATE PROCEDURE mi_inbox_consume
    @p_id  BIGINT,
    @p_ack NVARCHAR(16) = N'accepted'
AS
BEGIN
    SET NOCOUNT ON;
    UPDATE mi_inbox SET consumed_at = SYSUTCDATETIME(), his_ack = COALESCE(@p_ack, N'accepted')
     WHERE id = @p_id AND consumed_at IS NULL;
    IF @@ROWCOUNT = 0
    BEGIN
        DECLARE @msg NVARCHAR(400) = CONCAT(N'mibridge: inbox row ', @p_id,
            N' does not exist or was already consumed');
        THROW 50011, @msg, 1;
    END;
END;
GO

-- Views for DBAs (times are UTC) -------------------------------------------
CREATE VIEW mi_v_pending AS
SELECT id, kind, business_key, serial_key, state, step, attempts, next_attempt_at, created_at,
       DATEDIFF_BIG(SECOND, created_at, SYSUTCDATETIME()) AS age_seconds,
       last_error_code, last_error_message
  FROM mi_outbox WHERE state IN (N'pending', N'in_doubt');
GO

CREATE VIEW mi_v_in_flight AS
SELECT id, kind, business_key, step, lease_owner, lease_expires_at, current_call, attempts, updated_at
  FROM mi_outbox WHERE state = N'running';
GO

CREATE VIEW mi_v_held AS
SELECT id, kind, business_key, serial_key, step, attempts, last_error_code AS reason_code,
       last_error_message AS reason, updated_at
  FROM mi_outbox WHERE state = N'held';
GO

CREATE VIEW mi_v_failed AS
SELECT id, kind, business_key, step, finished_at, last_error_code, last_error_message
  FROM mi_outbox WHERE state = N'failed';
GO

-- "Today" is the server's local day: its local midnight, converted to UTC.
-- The amount is that of each request's latest inbox row.
CREATE VIEW mi_v_today AS
SELECT o.kind, o.state, COUNT(*) AS requests, SUM(i.total_amount) AS total_amount
  FROM mi_outbox o
  OUTER APPLY (SELECT TOP (1) x.total_amount FROM mi_inbox x WHERE x.outbox_id = o.id
                ORDER BY x.id DESC) i
 WHERE o.created_at >= DATEADD(MINUTE, -DATEPART(TZOFFSET, SYSDATETIMEOFFSET()),
                               CAST(CAST(SYSDATETIME() AS DATE) AS DATETIME2(6)))
 GROUP BY o.kind, o.state;
GO

-- mibridge migration 003: mi_secret, the daemon's own store of tokens and ID numbers.
-- A flow's secrets (the mobile-pay payToken, a face-identified patient's ID number,
-- name, ecToken and authNo) live here instead of in mi_outbox.flow_data, which the HIS
-- and DBAs read. Only the daemon reads or writes it (grants.sql gives the HIS nothing
-- on it). A row's secrets go when the request is final, except what a later request
-- needs (a payment's payToken for its refund), and with the row when it is purged.
-- name compares byte for byte (_BIN2), whatever the database's default collation.
CREATE TABLE mi_secret (
    outbox_id        BIGINT          NOT NULL,
    name             NVARCHAR(64)    COLLATE Latin1_General_100_BIN2 NOT NULL,
    value            NVARCHAR(2000)  NOT NULL,
    created_at       DATETIME2(6)    NOT NULL DEFAULT SYSUTCDATETIME(),
    CONSTRAINT mi_secret_pk PRIMARY KEY (outbox_id, name),
    CONSTRAINT mi_secret_outbox_fk FOREIGN KEY (outbox_id) REFERENCES mi_outbox (id)
);
GO
