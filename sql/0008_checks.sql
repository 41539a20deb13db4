-- Schema version 8: the CHECK constraints on a column's few allowed values say them as
-- comparisons joined by OR instead of IN (...). Same rule, every row written before still
-- obeys it; but SQLite evaluates an IN list of three or more values by building a temporary
-- b-tree for it, at every row written, and these checks run at each record's ingest and at
-- each change of its state (most of the drain's instructions went there).
-- A CHECK constraint is not part of what a table stores, so the table's CREATE text is
-- changed in place, the way SQLite documents for such changes ("Making Other Kinds Of Table
-- Schema Changes", ALTER TABLE); the migration then raises schema_version so that every
-- connection, this one included, reads the schema anew (src/outbox.c, migrate).
PRAGMA writable_schema = ON;
UPDATE sqlite_schema SET sql =
    replace(replace(replace(replace(sql,
        'CHECK (op IN (''update'', ''delete'', ''skip''))',
        'CHECK (op = ''update'' OR op = ''delete'' OR op = ''skip'')'),
        'CHECK (state IN (''pending'', ''committed'', ''dead''))',
        'CHECK (state = ''pending'' OR state = ''committed'' OR state = ''dead'')'),
        'CHECK (state IN (''scanning'', ''done'', ''cancelled''))',
        'CHECK (state = ''scanning'' OR state = ''done'' OR state = ''cancelled'')'),
        'CHECK (outcome IN (''sent'', ''superseded'', ''dead''))',
        'CHECK (outcome = ''sent'' OR outcome = ''superseded'' OR outcome = ''dead'')')
    WHERE type = 'table' AND name IN ('record_info', 'record_state', 'backfill_job', 'snapshot');
PRAGMA writable_schema = OFF;
