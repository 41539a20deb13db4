-- Schema version 5: the backfill. The items that existed before the stream become snapshot
-- records of their documents, sent only where the stream has nothing to say (see README,
-- "Loading an existing table"). Version 4 is another change's; versions may be missing here.

-- What a row is: a stream record as received, or a snapshot of an item read by a Scan.
ALTER TABLE record_info ADD COLUMN kind TEXT NOT NULL DEFAULT 'stream'
    CHECK (kind IN ('stream', 'snapshot'));

-- The high watermark: which stream records arrived lately, and when they were created.
CREATE INDEX records_arrived ON record_info (table_name, arrived_at) WHERE kind = 'stream';

-- One backfill of a table.
CREATE TABLE backfill_job (
    id           INTEGER PRIMARY KEY,
    table_name   TEXT NOT NULL,
    stream_arn   TEXT NOT NULL,          -- the table's stream, as DescribeTable named it
    partition_key TEXT NOT NULL,
    sort_key     TEXT,
    segments     INTEGER NOT NULL,       -- Scan's TotalSegments
    rate         REAL NOT NULL,          -- read capacity units per second
    consistent   INTEGER NOT NULL,       -- 1: ConsistentRead
    page_limit   INTEGER NOT NULL DEFAULT 0, -- Scan's Limit; 0: 1 MB pages
    item_count   INTEGER,                -- DescribeTable's ItemCount at the start (approximate)
    state        TEXT NOT NULL CHECK (state IN ('scanning', 'done', 'cancelled')),
    created_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    scan_ms      INTEGER NOT NULL DEFAULT 0, -- time spent scanning, over every run
    runner       TEXT,                   -- who scans it now (host:pid:random), one at a time
    runner_until INTEGER                 -- when that claim lapses unless renewed (ms)
);

-- Where each segment of a job stands; written in the transaction of the page it follows.
CREATE TABLE backfill_segment (
    job_id       INTEGER NOT NULL REFERENCES backfill_job (id),
    segment      INTEGER NOT NULL,
    last_key     TEXT,                   -- LastEvaluatedKey of the last page kept (JSON)
    done         INTEGER NOT NULL DEFAULT 0,
    pages        INTEGER NOT NULL DEFAULT 0,
    items        INTEGER NOT NULL DEFAULT 0,
    read_units   REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, segment)
);

-- A snapshot row: which page read it, and the page's read window (ms: the clock just before
-- the Scan request and just after its answer).
CREATE TABLE snapshot (
    id           INTEGER PRIMARY KEY REFERENCES record_info (id),
    job_id       INTEGER NOT NULL,
    segment      INTEGER NOT NULL,
    page         INTEGER NOT NULL,
    read_start   INTEGER NOT NULL,
    read_end     INTEGER NOT NULL,
    ready        INTEGER NOT NULL DEFAULT 0, -- 1: the stream caught up past its read
    outcome      TEXT CHECK (outcome IN ('sent', 'superseded', 'dead'))  -- NULL: undecided
);
CREATE INDEX snapshot_open ON snapshot (id) WHERE outcome IS NULL;
CREATE INDEX snapshot_job ON snapshot (job_id, outcome);

-- The views know the kind.
DROP VIEW records;
CREATE VIEW records AS
SELECT i.id, i.stream_arn, i.seq, i.seq_key, i.raw_sha256, i.event_id, i.event_name,
       i.table_name, i.document, i.op, i.created_at, i.arrived_at,
       s.state, s.attempts, s.last_error, s.committed_at, i.kind
FROM record_info i JOIN record_state s USING (id);

DROP VIEW doc_history;
CREATE VIEW doc_history AS
SELECT document, id, kind, seq, event_name, op, state,
       strftime('%Y-%m-%dT%H:%M:%SZ', created_at / 1000, 'unixepoch') AS changed,
       strftime('%Y-%m-%dT%H:%M:%SZ', arrived_at / 1000, 'unixepoch') AS arrived,
       strftime('%Y-%m-%dT%H:%M:%SZ', committed_at / 1000, 'unixepoch') AS committed,
       last_error
FROM records
ORDER BY document, id;

-- The latest state of every document, as before, where a snapshot stands once it was sent and
-- a row a backfill superseded never does.
DROP VIEW documents;
CREATE VIEW documents AS
SELECT i.document, i.table_name, i.id, i.seq, i.op, s.state,
       strftime('%Y-%m-%dT%H:%M:%SZ', i.created_at / 1000, 'unixepoch') AS changed
FROM record_info i JOIN record_state s USING (id)
WHERE i.id IN (SELECT max(j.id) FROM record_info j JOIN record_state t USING (id)
               WHERE j.document IS NOT NULL AND j.op IN ('update', 'delete')
                 AND t.state <> 'dead'
                 AND coalesce(t.last_error, '') NOT LIKE 'superseded: %'
                 AND (j.kind = 'stream'
                      OR (SELECT outcome FROM snapshot p WHERE p.id = j.id) = 'sent')
               GROUP BY j.document);

-- Each backfill: how far it is, and what became of its snapshots.
CREATE VIEW backfills AS
SELECT j.id, j.table_name, j.state, j.segments, j.rate, j.item_count, j.scan_ms,
       (SELECT count(*) FROM backfill_segment g WHERE g.job_id = j.id AND g.done) AS segments_done,
       (SELECT sum(items) FROM backfill_segment g WHERE g.job_id = j.id) AS items,
       (SELECT sum(pages) FROM backfill_segment g WHERE g.job_id = j.id) AS pages,
       (SELECT sum(read_units) FROM backfill_segment g WHERE g.job_id = j.id) AS read_units,
       (SELECT count(*) FROM snapshot p WHERE p.job_id = j.id AND p.outcome IS NULL) AS waiting,
       (SELECT count(*) FROM snapshot p WHERE p.job_id = j.id AND p.outcome = 'superseded')
           AS superseded,
       (SELECT count(*) FROM snapshot p WHERE p.job_id = j.id AND p.outcome = 'sent') AS sent
FROM backfill_job j
ORDER BY j.id;
