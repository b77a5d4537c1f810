//! The store's layout can change under a user's feet: a data directory an older build wrote
//! (schema 1, runs keyed by their ID text) opens in this one with every run where it was.

use std::time::Duration;

use rusqlite::Connection;
use serde_json::{Value, json};

use crate::support::Sandbox;

const T: Duration = Duration::from_secs(60);

/// Writes a schema-1 database the way the previous build did, with one row per `(id, name,
/// status, input)`: completed runs echo their input; unfinished ones are queued.
fn schema_1_store(data: &std::path::Path, runs: &[(&str, &str, i64, Value)]) {
    std::fs::create_dir_all(data).unwrap();
    let mut conn = Connection::open(data.join("restack.db")).unwrap();
    restack::engine::store::schema::migrate_through(&mut conn, 1).unwrap();
    for (id, name, status, input) in runs {
        let done = (*status == 2).then_some(1_700_000_000_000i64);
        conn.execute(
            "INSERT INTO runs (id, kind, name, status, input, output, created_at, started_at, completed_at)
             VALUES (?1, 0, ?2, ?3, ?4, ?5, 1700000000000, ?6, ?6)",
            rusqlite::params![
                id,
                name,
                status,
                input.to_string(),
                done.map(|_| input.to_string()),
                done
            ],
        )
        .unwrap();
    }
}

fn ids(body: &Value) -> Vec<String> {
    body["runs"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|r| r["runId"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn runs_an_older_build_stored_keep_their_ids_and_queued_ones_still_run() {
    let sb = Sandbox::new();
    let data = sb.path("engine");
    let old: Vec<String> = (0..3).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    schema_1_store(
        &data,
        &[
            (&old[0], "echo", 2, json!({"n": 0})),
            (&old[1], "echo", 0, json!({"n": 1})),
            (&old[2], "sleep", 0, json!({"seconds": 600})),
        ],
    );
    let server = sb.serve(None, &data, &[]);

    let (code, done) = server.get(&format!("/api/agents/echo/{}", old[0]));
    assert_eq!(code, 200, "{done}");
    assert_eq!(
        (&done["status"], &done["output"]),
        (&json!("completed"), &json!({"n": 0}))
    );
    // The queued one is picked up at start and runs under its old ID.
    let ran = server.wait_done("agents", "echo", &old[1], T);
    assert_eq!(ran["output"], json!({"n": 1}), "{ran}");
    let (code, canceled) = server.post(&format!("/api/agents/sleep/{}/cancel", old[2]), json!({}));
    assert_eq!(code, 200, "{canceled}");
    assert_eq!(canceled["canceled"], json!(true));

    // New runs list after the old ones, by name and over all names, and a page boundary at
    // an old ID continues with the older runs.
    let new = server.schedule("agents", "echo", json!({"n": 3}));
    assert!(new > old[2], "{new} sorts after {}", old[2]);
    let (_, by_name) = server.get("/api/runs?name=echo");
    assert_eq!(ids(&by_name), [new.as_str(), &old[1], &old[0]]);
    let (_, all) = server.get("/api/runs");
    assert_eq!(ids(&all), [new.as_str(), &old[2], &old[1], &old[0]]);
    let (_, page) = server.get(&format!("/api/runs?name=echo&before={}", old[1]));
    assert_eq!(ids(&page), [old[0].as_str()]);

    // An ID that was never stored is still a 404, whichever form it has.
    for unknown in [uuid::Uuid::now_v7().to_string(), "not-a-run".to_string()] {
        let (code, body) = server.get(&format!("/api/agents/echo/{unknown}"));
        assert_eq!(code, 404, "{unknown}: {body}");
    }
}

#[test]
fn a_listing_cursor_that_is_no_run_id_is_a_400() {
    let sb = Sandbox::new();
    let server = sb.serve(None, &sb.path("engine"), &[]);
    server.schedule("agents", "echo", json!({}));
    let (code, body) = server.get("/api/runs?before=yesterday");
    assert_eq!(code, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("before"), "{body}");
}

/// A data directory whose `restack.db` is not ours is refused at start, naming the file and
/// saying what it is, untouched: random bytes, or another program's SQLite database (which a
/// migration would have failed on half-way, or altered).
#[test]
fn a_database_restack_did_not_write_is_refused_untouched() {
    let sb = Sandbox::new();
    let garbage = sb.path("garbage");
    std::fs::create_dir_all(&garbage).unwrap();
    std::fs::write(garbage.join("restack.db"), vec![0x5au8; 64 * 1024]).unwrap();
    // A data directory whose `restack.db` is what `sql` makes.
    let db_made_by = |dir: &str, sql: &str| {
        let dir = sb.path(dir);
        std::fs::create_dir_all(&dir).unwrap();
        Connection::open(dir.join("restack.db"))
            .unwrap()
            .execute_batch(sql)
            .unwrap();
        dir
    };
    // Another program's files: one at schema version 0 with a table named like ours, one that
    // set its own version (as many do).
    let foreign = db_made_by(
        "foreign",
        "CREATE TABLE runs (who TEXT); INSERT INTO runs VALUES ('theirs');",
    );
    let versioned = db_made_by(
        "versioned",
        "CREATE TABLE notes (x); PRAGMA user_version = 12;",
    );
    // And one a newer build wrote.
    let newer = db_made_by(
        "newer",
        "CREATE TABLE runs (x); CREATE TABLE steps (x); CREATE TABLE logs (x);
         PRAGMA user_version = 99;",
    );
    for (dir, says) in [
        (
            &garbage,
            "not a restack database: the file is not SQLite at all",
        ),
        (
            &foreign,
            "not a restack database: a SQLite database that restack did not create",
        ),
        (
            &versioned,
            "not a restack database: a SQLite database that restack did not create",
        ),
        (&newer, "newer than this build knows"),
    ] {
        let before = std::fs::read(dir.join("restack.db")).unwrap();
        let out = sb
            .cmd()
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("restack.db") && err.contains(says), "{err}");
        assert!(!err.contains("CREATE"), "no SQL in the message: {err}");
        let after = std::fs::read(dir.join("restack.db")).unwrap();
        assert!(before == after, "{}: the file was changed", dir.display());
    }
    let theirs: String = Connection::open(foreign.join("restack.db"))
        .unwrap()
        .query_row("SELECT who FROM runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(theirs, "theirs");
}
