//! Numbered migrations. `PRAGMA user_version` records how many have run; a database from a
//! newer build (more migrations than we know) is refused rather than misread.

use anyhow::{Result, bail};
use rusqlite::Connection;

/// Each entry runs once, in order, inside one transaction with the version bump.
const MIGRATIONS: &[&str] = &[
    // 1: runs, workflow steps, logs.
    "CREATE TABLE runs (
        id           TEXT PRIMARY KEY,
        kind         INTEGER NOT NULL,          -- 0 agent, 1 workflow
        name         TEXT NOT NULL,
        status       INTEGER NOT NULL,          -- 0 queued, 1 running, 2 completed, 3 failed
        input        TEXT NOT NULL,
        output       TEXT,
        error        TEXT,
        created_at   INTEGER NOT NULL,          -- Unix ms
        started_at   INTEGER,
        completed_at INTEGER,
        attempt      INTEGER NOT NULL DEFAULT 0,
        wake_at      INTEGER,                   -- durable timer of the built-in sleep agent
        canceled     INTEGER NOT NULL DEFAULT 0
     ) WITHOUT ROWID;
     -- Start-up reads only unfinished runs: a partial index keeps that off a full scan.
     CREATE INDEX runs_active ON runs(status) WHERE status < 2;
     CREATE INDEX runs_by_name ON runs(kind, name, id);
     CREATE TABLE steps (
        run_id       TEXT NOT NULL,
        idx          INTEGER NOT NULL,
        status       INTEGER NOT NULL,
        output       TEXT,
        error        TEXT,
        started_at   INTEGER,
        completed_at INTEGER,
        wake_at      INTEGER,
        attempt      INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (run_id, idx)
     ) WITHOUT ROWID;
     CREATE TABLE logs (
        id      INTEGER PRIMARY KEY,
        run_id  TEXT NOT NULL,
        at      INTEGER NOT NULL,
        step    INTEGER,
        attempt INTEGER,
        line    TEXT NOT NULL
     );
     CREATE INDEX logs_by_run ON logs(run_id, id);",
];

pub fn migrate(conn: &mut Connection) -> Result<()> {
    let version: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > MIGRATIONS.len() {
        bail!(
            "the database is at schema version {version}, newer than this build knows ({}); use a newer restack",
            MIGRATIONS.len()
        );
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}
