-- Schema version 2: state the drain keeps between runs.

-- Small named values: 'ramp_started_at' (ms), when Firestore's 500/50/5 ramp-up began.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
