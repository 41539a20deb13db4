-- Schema version 6: fences kept compact. A target (its endpoint and database: tens of bytes, the
-- same in every row) is named once, in fence_target; each fence is keyed by that number and the
-- document: a smaller file and shorter keys to compare. A plain rowid table, as every table of
-- the outbox, so that the sqlite3 shell's and the tests' reads by rowid work on it too.
CREATE TABLE fence_target (
    id          INTEGER PRIMARY KEY,
    target      TEXT NOT NULL UNIQUE    -- 'https://ENDPOINT/v1/projects/P/databases/D/documents'
);
INSERT INTO fence_target (target) SELECT DISTINCT target FROM fence ORDER BY target;

CREATE TABLE fence_by_target (
    target_id   INTEGER NOT NULL REFERENCES fence_target (id),
    document    TEXT NOT NULL,          -- 'collection/id'
    update_time TEXT,                   -- Firestore's updateTime; NULL: the document is absent
    PRIMARY KEY (target_id, document)
);
INSERT INTO fence_by_target (target_id, document, update_time)
    SELECT t.id, f.document, f.update_time FROM fence f JOIN fence_target t USING (target);
DROP TABLE fence;
ALTER TABLE fence_by_target RENAME TO fence;
