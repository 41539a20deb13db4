-- The ddb2fs outbox, schema version 1.
-- A stream record is kept in three tables that share its id (its arrival order): what it is
-- (record_info, written once), where it stands (record_state, small rows that change as it
-- is sent) and its JSON exactly as received (record_raw). The view records joins them.
-- Times are Unix epoch milliseconds. Sequence numbers are kept as received (seq) and as
-- 40-digit zero-padded text (seq_key), so that text order is numeric order.

CREATE TABLE record_info (
    id           INTEGER PRIMARY KEY,   -- arrival order
    stream_arn   TEXT,                  -- eventSourceARN
    seq          TEXT,                  -- dynamodb.SequenceNumber as received
    seq_key      TEXT,                  -- seq, zero-padded to 40 digits; NULL when invalid
    raw_sha256   TEXT,                  -- dedupe key of a record with no valid ARN + sequence
    event_id     TEXT,                  -- eventID
    event_name   TEXT,                  -- INSERT, MODIFY, REMOVE (as received)
    table_name   TEXT,                  -- from the ARN
    document     TEXT,                  -- "collection/id"; NULL until the key schema is known
    op           TEXT CHECK (op IN ('update', 'delete', 'skip')),
    created_at   INTEGER,               -- dynamodb.ApproximateCreationDateTime
    arrived_at   INTEGER NOT NULL       -- when the record was made durable here
);

CREATE TABLE record_state (
    id           INTEGER PRIMARY KEY REFERENCES record_info (id),
    state        TEXT NOT NULL CHECK (state IN ('pending', 'committed', 'dead')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,                  -- why the record is dead, or the last failed attempt
    committed_at INTEGER                -- when Firestore accepted it (or it was superseded)
);

CREATE TABLE record_raw (
    id           INTEGER PRIMARY KEY REFERENCES record_info (id),
    raw          TEXT NOT NULL          -- the record's JSON exactly as received
);

-- Dedupe: Lambda's retries and replays of a batch change nothing.
CREATE UNIQUE INDEX records_dedupe ON record_info (stream_arn, seq_key)
    WHERE seq_key IS NOT NULL;
CREATE UNIQUE INDEX records_dedupe_raw ON record_info (raw_sha256) WHERE raw_sha256 IS NOT NULL;
-- The drain's window: pending rows in arrival order.
CREATE INDEX records_pending ON record_state (id) WHERE state = 'pending';
-- A document's history.
CREATE INDEX records_document ON record_info (document, id);

-- Every record, with where it stands (its JSON is in raw_records).
CREATE VIEW records AS
SELECT i.id, i.stream_arn, i.seq, i.seq_key, i.raw_sha256, i.event_id, i.event_name,
       i.table_name, i.document, i.op, i.created_at, i.arrived_at,
       s.state, s.attempts, s.last_error, s.committed_at
FROM record_info i JOIN record_state s USING (id);

-- Key schema per table, recorded at first use; a later contradicting setting is refused.
CREATE TABLE key_schema (
    table_name   TEXT PRIMARY KEY,
    partition_key TEXT NOT NULL,
    sort_key     TEXT,
    source       TEXT NOT NULL,         -- 'DDB2FS_KEYS', ...
    recorded_at  INTEGER NOT NULL
);

-- The drain lease: one drainer at a time, so that commits leave in order.
CREATE TABLE lease (
    name         TEXT PRIMARY KEY,      -- 'drain'
    owner        TEXT NOT NULL,         -- host and process of the holder
    acquired_at  INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);

-- Views for people: sqlite3 ddb2fs.db 'select * from pending_summary'

-- One row per table: how much is pending, dead and committed, and how old the oldest pending is.
CREATE VIEW pending_summary AS
SELECT table_name,
       sum(state = 'pending')   AS pending,
       sum(state = 'dead')      AS dead,
       sum(state = 'committed') AS committed,
       strftime('%Y-%m-%dT%H:%M:%SZ', min(CASE WHEN state = 'pending' THEN arrived_at END) / 1000,
                'unixepoch') AS oldest_pending_arrived,
       CAST((strftime('%s', 'now') * 1000 - min(CASE WHEN state = 'pending' THEN arrived_at END))
            / 1000 AS INTEGER) AS oldest_pending_age_s
FROM records
GROUP BY table_name;

-- Dead records and why.
CREATE VIEW dead AS
SELECT id, table_name, document, seq, event_name,
       strftime('%Y-%m-%dT%H:%M:%SZ', arrived_at / 1000, 'unixepoch') AS arrived,
       attempts, last_error
FROM records
WHERE state = 'dead'
ORDER BY id;

-- Replication lag per stream: the oldest change not yet in Firestore.
CREATE VIEW lag AS
SELECT table_name, stream_arn,
       count(*) AS pending,
       strftime('%Y-%m-%dT%H:%M:%SZ', min(created_at) / 1000, 'unixepoch') AS oldest_change,
       CAST((strftime('%s', 'now') * 1000 - min(created_at)) / 1000 AS INTEGER) AS lag_s,
       CAST((strftime('%s', 'now') * 1000 - min(arrived_at)) / 1000 AS INTEGER) AS queued_s
FROM records
WHERE state = 'pending'
GROUP BY table_name, stream_arn;

-- Records with their JSON as received: WHERE seq = '111'.
CREATE VIEW raw_records AS
SELECT r.id, r.seq, r.table_name, r.document, r.event_name, r.state, r.last_error, x.raw
FROM records r JOIN record_raw x USING (id);

-- Every change of every document, in arrival order: WHERE document = 'Orders/42#2024'.
CREATE VIEW doc_history AS
SELECT document, id, seq, event_name, op, state,
       strftime('%Y-%m-%dT%H:%M:%SZ', created_at / 1000, 'unixepoch') AS changed,
       strftime('%Y-%m-%dT%H:%M:%SZ', arrived_at / 1000, 'unixepoch') AS arrived,
       strftime('%Y-%m-%dT%H:%M:%SZ', committed_at / 1000, 'unixepoch') AS committed,
       last_error
FROM records
ORDER BY document, id;
