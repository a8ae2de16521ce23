-- mibridge migration 002 (hardening) for MariaDB: from schema version 1 (the
-- release installed by 001_baseline.sql) to version 2.
-- Normally run by `mibridge db upgrade --url ...`. By hand:
--   mysql --database=hisdb < sql/mysql/migrations/002_hardening.sql
-- MariaDB commits each DDL statement on its own, so a migration cannot be
-- rolled back as a whole: every statement here can be run again, and after a
-- failure `mibridge db upgrade` (or this file) is simply run again once the
-- cause is fixed.
-- What changes (docs/migrations.md):
--   * mi_schema_version records which migrations ran;
--   * every text column compares byte for byte (utf8mb4_nopad_bin): keys that
--     differ in case or trailing blanks were the same key before;
--   * keys (kind, business_key, serial_key) are checked the same way on every
--     database: no blank at either end, at most 40/64/64 characters (the
--     columns are wider, so that a non-strict session cannot cut a long key
--     into a valid one before it is checked);
--   * a payload with a key twice in one object is refused; total_amount is
--     checked on the text the HIS wrote;
--   * mi_inbox_consume refuses a NULL or misspelt verdict (NULL used to count
--     as 'accepted') and tells a missing row from one already consumed;
--   * indexes for the HIS's polls by business key, for order_id, and for a
--     request's serial key in any state.
-- Nothing here deletes a row.

-- Stored programs keep the sql_mode they were created with: strict, so that
-- nothing inside them is ever cut or converted silently; backslash escapes on.
SET SESSION sql_mode = 'STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ZERO_DATE,NO_ENGINE_SUBSTITUTION';

CREATE TABLE IF NOT EXISTS mi_schema_version (
    version          INT           NOT NULL PRIMARY KEY,
    name             VARCHAR(100)  NOT NULL,
    applied_at       DATETIME(6)   NOT NULL DEFAULT (UTC_TIMESTAMP(6))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin;

ALTER TABLE mi_outbox CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin,
    MODIFY kind VARCHAR(80) COLLATE utf8mb4_nopad_bin NOT NULL,
    MODIFY business_key VARCHAR(128) COLLATE utf8mb4_nopad_bin NOT NULL,
    MODIFY serial_key VARCHAR(128) COLLATE utf8mb4_nopad_bin NOT NULL,
    MODIFY open_serial_key VARCHAR(128) COLLATE utf8mb4_nopad_bin
        AS (CASE WHEN state IN ('pending', 'running', 'in_doubt', 'held') THEN serial_key END) VIRTUAL;
ALTER TABLE mi_inbox CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;
ALTER TABLE mi_journal CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;
ALTER TABLE mi_identity CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;
ALTER TABLE mi_audit CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;
ALTER TABLE mi_notice CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;

-- The HIS polls its results by business key; refunds sum their payment's rows by order_id.
CREATE INDEX IF NOT EXISTS mi_inbox_business_ix ON mi_inbox (business_key, kind);
CREATE INDEX IF NOT EXISTS mi_inbox_order_ix ON mi_inbox (order_id);
-- Requests of one kind and serial key in any state (a refund counts its payment's
-- other refunds): the open-row index cannot serve a query that names final states.
CREATE INDEX IF NOT EXISTS mi_outbox_serial_kind_ix ON mi_outbox (serial_key, kind);

-- Validation that holds however a row arrives (mi_enqueue or a plain INSERT
-- from an HIS trigger): bad input is refused to the HIS, nothing is inserted.
-- The key columns are wider than the keys may be (80/128 for 40/64), so that
-- a session without strict mode cannot cut a long key down to a valid one:
-- the length is checked here, on what the HIS sent.
DELIMITER //
CREATE OR REPLACE TRIGGER mi_outbox_validate_tg BEFORE INSERT ON mi_outbox FOR EACH ROW
BEGIN
    DECLARE amount LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;
    IF NEW.kind IS NULL OR TRIM(NEW.kind) = '' THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: kind is required';
    END IF;
    IF NEW.business_key IS NULL OR TRIM(NEW.business_key) = '' THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: business_key is required';
    END IF;
    IF NEW.serial_key IS NULL OR TRIM(NEW.serial_key) = '' THEN
        SET NEW.serial_key = NEW.business_key;
    END IF;
    -- Keys compare byte for byte (utf8mb4_nopad_bin). A blank at either end is
    -- refused rather than kept, as on every database (SQL Server's '=' ignores
    -- trailing blanks).
    IF ORD(NEW.kind) IN (9, 10, 13, 32) OR ORD(RIGHT(NEW.kind, 1)) IN (9, 10, 13, 32) THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: kind must not start or end with a blank';
    END IF;
    IF ORD(NEW.business_key) IN (9, 10, 13, 32) OR ORD(RIGHT(NEW.business_key, 1)) IN (9, 10, 13, 32) THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: business_key must not start or end with a blank';
    END IF;
    IF ORD(NEW.serial_key) IN (9, 10, 13, 32) OR ORD(RIGHT(NEW.serial_key, 1)) IN (9, 10, 13, 32) THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: serial_key must not start or end with a blank';
    END IF;
    IF CHAR_LENGTH(NEW.kind) > 40 THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: kind is longer than 40 characters';
    END IF;
    IF CHAR_LENGTH(NEW.business_key) > 64 THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: business_key is longer than 64 characters';
    END IF;
    IF CHAR_LENGTH(NEW.serial_key) > 64 THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: serial_key is longer than 64 characters';
    END IF;
    -- JSON_VALID also refuses a lone UTF-16 surrogate escape and NaN.
    IF NEW.payload IS NULL OR JSON_VALID(NEW.payload) = 0 THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: payload is not valid JSON';
    END IF;
    IF JSON_TYPE(NEW.payload) <> 'OBJECT' THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: payload must be a JSON object';
    END IF;
    -- A key twice in one object (MariaDB would read the first, the daemon the
    -- last): every object of the document, the document itself included, has
    -- as many members as distinct keys (escapes decoded).
    IF EXISTS (SELECT 1
                 FROM JSON_TABLE(JSON_ARRAY_APPEND(COALESCE(JSON_EXTRACT(NEW.payload, '$**.*', '$**[*]'), '[]'),
                                                   '$', JSON_EXTRACT(NEW.payload, '$')),
                                 '$[*]' COLUMNS (v JSON PATH '$')) o
                WHERE JSON_TYPE(o.v) = 'OBJECT'
                  AND JSON_LENGTH(o.v) <> (SELECT COUNT(DISTINCT k.k)
                                             FROM JSON_TABLE(JSON_KEYS(o.v), '$[*]' COLUMNS (
                                                  k TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin PATH '$')) k)) THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: payload has a key twice in one object';
    END IF;
    -- The amount as written: a string, or a number in plain digits (JSON_EXTRACT
    -- keeps a number's text, so 1e3 and -0 are refused). \z: the very end (a
    -- $ would also match before a final newline).
    SET amount = JSON_EXTRACT(NEW.payload, '$.total_amount');
    IF amount IS NOT NULL AND JSON_TYPE(amount) <> 'NULL' THEN
        IF JSON_TYPE(amount) = 'STRING' THEN
            SET amount = JSON_UNQUOTE(amount);
        ELSEIF JSON_TYPE(amount) NOT IN ('INTEGER', 'DOUBLE', 'DECIMAL') THEN
            SET amount = 'x';
        END IF;
        IF amount NOT REGEXP '^[0-9]+(\\.[0-9]{1,2})?\\z' THEN
            SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: total_amount must be a non-negative amount with at most 2 decimals';
        END IF;
    END IF;
END //

-- The one call the HIS makes per request:
--   CALL mi_enqueue('test.charge', 'INV-1', 'VISIT-1', '{"total_amount":"12.50"}', @id); SELECT @id;
-- The same (kind, business_key) with the same payload returns the existing id
-- (the order of the payload's fields does not matter); with a different
-- payload it is an error. The parameters are utf8mb4 whatever the database's
-- default character set, and long enough that nothing is cut before it is checked.
CREATE OR REPLACE PROCEDURE mi_enqueue(
    IN p_kind         TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin,
    IN p_business_key TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin,
    IN p_serial_key   TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin,
    IN p_payload      LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin,
    OUT p_id          BIGINT)
BEGIN
    DECLARE old_payload LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;
    DECLARE duplicate INT DEFAULT 0;
    -- Insert first: of two identical calls racing, one inserts and the other
    -- lands here on the unique key (1062) and returns the same id. The BEFORE
    -- INSERT trigger has checked the payload either way.
    DECLARE CONTINUE HANDLER FOR 1062 SET duplicate = 1;
    SET p_id = NULL;
    IF CHAR_LENGTH(p_kind) > 40 THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: kind is longer than 40 characters';
    END IF;
    IF CHAR_LENGTH(p_business_key) > 64 THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: business_key is longer than 64 characters';
    END IF;
    IF CHAR_LENGTH(p_serial_key) > 64 THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: serial_key is longer than 64 characters';
    END IF;
    INSERT INTO mi_outbox (kind, business_key, serial_key, payload)
    VALUES (p_kind, p_business_key, COALESCE(p_serial_key, p_business_key), p_payload);
    IF duplicate = 0 THEN
        SET p_id = LAST_INSERT_ID();
    END IF;
    SELECT id, payload INTO p_id, old_payload FROM mi_outbox
     WHERE kind = p_kind AND business_key = p_business_key;
    IF duplicate = 1 AND NOT (JSON_VALID(p_payload) AND JSON_EQUALS(old_payload, p_payload)) THEN
        SIGNAL SQLSTATE '45000'
            SET MESSAGE_TEXT = 'mibridge: this request (kind, business_key) already exists with a different payload';
    END IF;
END //

-- The HIS marks an inbox row as taken ('accepted') or refused ('rejected'):
--   CALL mi_inbox_consume(42, 'accepted');
-- Any other verdict, NULL included, is refused: nothing counts as accepted by default.
CREATE OR REPLACE PROCEDURE mi_inbox_consume(
    IN p_id  BIGINT,
    IN p_ack TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin)
BEGIN
    IF p_ack IS NULL OR p_ack NOT IN ('accepted', 'rejected') THEN
        SIGNAL SQLSTATE '45000'
            SET MESSAGE_TEXT = 'mibridge: the verdict must be ''accepted'' or ''rejected''';
    END IF;
    UPDATE mi_inbox SET consumed_at = UTC_TIMESTAMP(6), his_ack = p_ack
     WHERE id = p_id AND consumed_at IS NULL;
    IF ROW_COUNT() = 0 THEN
        IF EXISTS (SELECT 1 FROM mi_inbox WHERE id = p_id) THEN
            SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: inbox row was already consumed';
        END IF;
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mibridge: inbox row does not exist';
    END IF;
END //
DELIMITER ;

INSERT IGNORE INTO mi_schema_version (version, name) VALUES (1, '001_baseline'), (2, '002_hardening');
