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
    // 2: runs keyed by a number their IDs encode (see `ids`), so that scheduling inserts into
    // one B-tree. Existing runs keep their IDs, numbered in ID order below `LEGACY_SEQ_END`,
    // and are found through `runs_legacy_id`, which no new run enters. Listing by name goes
    // through `runs_by_name`, which the writer fills behind the commits up to
    // `meta.by_name_through` (see `writer::Names`).
    "CREATE TABLE runs2 (
        seq          INTEGER PRIMARY KEY,
        id           TEXT NOT NULL,
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
     );
     INSERT INTO runs2 (seq, id, kind, name, status, input, output, error, created_at,
                        started_at, completed_at, attempt, wake_at, canceled)
        SELECT row_number() OVER (ORDER BY id), id, kind, name, status, input, output, error,
               created_at, started_at, completed_at, attempt, wake_at, canceled
        FROM runs;
     DROP TABLE runs;
     ALTER TABLE runs2 RENAME TO runs;
     CREATE INDEX runs_active ON runs(status) WHERE status < 2;
     CREATE UNIQUE INDEX runs_legacy_id ON runs(id) WHERE seq < 1000000000000;
     CREATE TABLE runs_by_name (
        name TEXT NOT NULL,
        seq  INTEGER NOT NULL,
        kind INTEGER NOT NULL,
        PRIMARY KEY (name, seq)
     ) WITHOUT ROWID;
     INSERT INTO runs_by_name (name, seq, kind) SELECT name, seq, kind FROM runs;
     CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
     INSERT INTO meta (key, value) VALUES ('by_name_through', (SELECT coalesce(max(seq), 0) FROM runs));",
    // 3: queued runs by kind and name, oldest first, so that a command agent's backlog can
    // wait in the store and be read back a batch at a time (`engine::backlog`). Partial: a run
    // leaves it when it starts, and an `echo` run (stored completed) never enters it.
    "CREATE INDEX runs_queued ON runs(kind, name, seq) WHERE status = 0;",
    // 4: each step's definition as it ran (`agent NAME`, `sleep 3s`), so that a run resumed
    // after its workflow was edited is not driven through steps it never had (`executor`).
    "ALTER TABLE steps ADD COLUMN step TEXT;",
];

/// Whether the file is a restack database (or a new, empty one), read before anything writes
/// to it: another program's file is refused untouched, not migrated half-way, and a file that
/// is no database at all says so.
pub fn check_ours(conn: &Connection) -> Result<()> {
    let version: usize = match conn.query_row("PRAGMA user_version", [], |r| r.get(0)) {
        Ok(v) => v,
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) => {
            bail!("not a restack database: the file is not SQLite at all")
        }
        Err(e) => return Err(e.into()),
    };
    let mut stmt = conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table'")?;
    let tables: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let ours = if version == 0 {
        tables.is_empty()
    } else {
        ["runs", "steps", "logs"]
            .iter()
            .all(|t| tables.iter().any(|have| have == t))
    };
    if !ours {
        bail!(
            "not a restack database: a SQLite database that restack did not create (schema version {version}, tables: {})",
            crate::api::clip(&tables.join(", "))
        );
    }
    if version > MIGRATIONS.len() {
        bail!(
            "the database is at schema version {version}, newer than this build knows ({}); use a newer restack",
            MIGRATIONS.len()
        );
    }
    Ok(())
}

pub fn migrate(conn: &mut Connection) -> Result<()> {
    migrate_through(conn, MIGRATIONS.len())
}

/// Runs the migrations up to `target` only; tests use it to build a database as an older
/// build left it.
pub fn migrate_through(conn: &mut Connection, target: usize) -> Result<()> {
    let version: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > MIGRATIONS.len() {
        bail!(
            "the database is at schema version {version}, newer than this build knows ({}); use a newer restack",
            MIGRATIONS.len()
        );
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().take(target).skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    if version < target.min(MIGRATIONS.len()) {
        // A migration that rewrote a big table leaves its pages in the WAL; move them into
        // the database now and give the WAL's disk space back.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The partial index only serves queries that spell its condition the same way.
    #[test]
    fn the_legacy_id_index_covers_exactly_the_legacy_rows() {
        let bound = format!("seq < {}", super::super::ids::LEGACY_SEQ_END);
        assert!(MIGRATIONS[1].contains(&format!("runs_legacy_id ON runs(id) WHERE {bound};")));
    }
}
