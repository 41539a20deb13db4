-- Schema version 3: the settings in force, throughput, and where every document stands.

-- The settings the relay runs with (no secrets), recorded at start-up when they change.
CREATE TABLE settings (
    name        TEXT PRIMARY KEY,       -- the variable: 'DDB2FS_COLLECTIONS', ...
    value       TEXT,                   -- its value in force (defaults included); NULL: unset
    recorded_at INTEGER NOT NULL        -- when this value was first seen
);

-- Records made durable and committed per minute, the newest minute first.
CREATE VIEW throughput AS
SELECT minute, sum(ingested) AS ingested, sum(committed) AS committed
FROM (SELECT strftime('%Y-%m-%dT%H:%M', arrived_at / 1000, 'unixepoch') AS minute,
             1 AS ingested, 0 AS committed
      FROM record_info
      UNION ALL
      SELECT strftime('%Y-%m-%dT%H:%M', committed_at / 1000, 'unixepoch'), 0, 1
      FROM record_state WHERE state = 'committed' AND committed_at IS NOT NULL)
GROUP BY minute
ORDER BY minute DESC;

-- The latest state of every document: its last record that is neither dead nor a skipped TTL
-- expiry; what 'ddb2fs replay --rebuild' writes (op 'update'), or leaves absent ('delete').
CREATE VIEW documents AS
SELECT i.document, i.table_name, i.id, i.seq, i.op, s.state,
       strftime('%Y-%m-%dT%H:%M:%SZ', i.created_at / 1000, 'unixepoch') AS changed
FROM record_info i JOIN record_state s USING (id)
WHERE i.id IN (SELECT max(j.id) FROM record_info j JOIN record_state t USING (id)
               WHERE j.document IS NOT NULL AND j.op IN ('update', 'delete')
                 AND t.state <> 'dead'
               GROUP BY j.document);

-- Why records are dead, most frequent first.
CREATE VIEW dead_reasons AS
SELECT table_name, last_error, count(*) AS records, min(id) AS first_row, max(id) AS last_row
FROM records
WHERE state = 'dead'
GROUP BY table_name, last_error
ORDER BY records DESC;
