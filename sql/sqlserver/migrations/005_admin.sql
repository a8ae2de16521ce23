-- mibridge migration 005 (admin) for SQL Server: from schema version 4 to 5.
-- Normally run by `mibridge db upgrade --url mssql://...`. By hand:
--   sqlcmd -S dbhost -d hisdb -b -I -i sql/sqlserver/migrations/005_admin.sql
-- It runs as one transaction (XACT_ABORT): on any error nothing of it is kept.
-- What changes (docs/operations.md, "Admin functions in SQL"):
--   * mi_requeue, mi_resolve, mi_cancel (@p_id, @p_note[, @p_actor]): what
--     `mibridge requeue|resolve|cancel` and the console do, for a DBA in SQL, with
--     the same rules (the daemon calls them too); each audited in mi_audit with
--     ORIGINAL_LOGIN() (db_login) and who asked (actor; default the login);
--   * mi_journal.unsafe: whether a journalled call was not safe to repeat; NULL for
--     calls journalled before, counted as unsafe;
--   * the DBA views: the same columns on every database; mi_v_pending says why a
--     row waits; mi_v_today names its order. ALTER VIEW keeps their permissions;
--   * an index on mi_journal (started_at).
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
SET XACT_ABORT ON;
BEGIN TRANSACTION;
GO

ALTER TABLE mi_journal ADD unsafe SMALLINT;
ALTER TABLE mi_audit ADD db_login NVARCHAR(128);
CREATE INDEX mi_journal_started_ix ON mi_journal (started_at);
GO

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

-- Why a pending row waits (waits_for): serial_key (behind waits_behind_id, the
-- oldest unfinished request with the same serial key), query (a call in doubt),
-- his, patient, backoff, scheduled, worker; see sql/postgresql/install.sql.
-- last_error_* only while they belong to the current step's tries.
ALTER VIEW mi_v_pending AS
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

ALTER VIEW mi_v_in_flight AS
SELECT id, kind, business_key, step, lease_owner, lease_expires_at, current_call, attempts, updated_at,
       DATEDIFF_BIG(SECOND, created_at, SYSUTCDATETIME()) AS age_seconds
  FROM mi_outbox WHERE state = N'running';
GO

ALTER VIEW mi_v_held AS
SELECT id, kind, business_key, serial_key, step, attempts, last_error_code AS reason_code,
       last_error_message AS reason, updated_at,
       DATEDIFF_BIG(SECOND, created_at, SYSUTCDATETIME()) AS age_seconds, current_call
  FROM mi_outbox WHERE state = N'held';
GO

ALTER VIEW mi_v_failed AS
SELECT id, kind, business_key, step, finished_at, last_error_code, last_error_message,
       DATEDIFF_BIG(SECOND, created_at, SYSUTCDATETIME()) AS age_seconds
  FROM mi_outbox WHERE state = N'failed';
GO

-- "Today" is the server's local day: its local midnight, converted to UTC.
-- The amount is that of each request's latest inbox row. SQL Server does not
-- promise the order of a view's rows to an outer query (the TOP ... ORDER BY here
-- is how a view may name one); add ORDER BY kind, state where the order matters.
ALTER VIEW mi_v_today AS
SELECT TOP (9223372036854775807) o.kind, o.state, COUNT(*) AS requests, SUM(i.total_amount) AS total_amount
  FROM mi_outbox o
  OUTER APPLY (SELECT TOP (1) x.total_amount FROM mi_inbox x WHERE x.outbox_id = o.id
                ORDER BY x.id DESC) i
 WHERE o.created_at >= DATEADD(MINUTE, -DATEPART(TZOFFSET, SYSDATETIMEOFFSET()),
                               CAST(CAST(SYSDATETIME() AS DATE) AS DATETIME2(6)))
 GROUP BY o.kind, o.state
 ORDER BY o.kind, o.state;
GO

INSERT INTO mi_schema_version (version, name) VALUES (5, N'005_admin');
COMMIT TRANSACTION;
GO
