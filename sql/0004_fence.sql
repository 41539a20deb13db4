-- Schema version 4: fencing. Every write carries a precondition on what ddb2fs knows of the
-- document, so that a request that lands late (a hung commit, a dead drainer's) fails instead
-- of writing an older state over a newer one.

-- Per target database and document: the updateTime of the last write known to have landed.
CREATE TABLE fence (
    target      TEXT NOT NULL,          -- 'https://ENDPOINT/v1/projects/P/databases/D/documents'
    document    TEXT NOT NULL,          -- 'collection/id'
    update_time TEXT,                   -- Firestore's updateTime; NULL: the document is absent
    PRIMARY KEY (target, document)
);

-- Transactions that carry creates (exists=false) whose commit has not been seen to end: until
-- each is rolled back or has expired, a late commit of it could bring a deleted document back.
CREATE TABLE fence_transaction (
    target      TEXT NOT NULL,
    txn         TEXT NOT NULL,          -- the transaction id, as Firestore gave it
    began_at    INTEGER NOT NULL,       -- ms
    PRIMARY KEY (target, txn)
);
