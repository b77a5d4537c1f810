//! Listing by name must give the same runs whether the by-name index covers them or they are
//! still above its watermark (the state a crash between a commit and the index's catch-up
//! leaves). The engine's own writer catches up within milliseconds, so the split is made here
//! by hand on a store whose writer has stopped.

use std::sync::Arc;

use super::*;

fn echo(n: usize) -> NewRun {
    NewRun {
        kind: if n.is_multiple_of(3) {
            Kind::Workflow
        } else {
            Kind::Agent
        },
        name: if n.is_multiple_of(2) { "even" } else { "odd" }.into(),
        input: format!("{{\"n\":{n}}}"),
        created_at: 1_700_000_000_000,
        output: None,
    }
}

fn open(dir: &tempfile::TempDir, sync_full: bool) -> Store {
    Store::open(dir.path(), sync_full, Arc::new(Notifier::default())).unwrap()
}

fn list(store: &Store, name: &str, kind: Option<Kind>, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list_runs(&RunFilter {
                kind,
                name: Some(name.into()),
                limit,
                before,
                ..Default::default()
            })
            .unwrap();
        out.extend(page.iter().map(|r| r.id.clone()));
        match page.last() {
            Some(last) if page.len() == limit => before = store.cursor(&last.id).unwrap(),
            _ => return out,
        }
    }
}

#[tokio::test]
async fn listing_by_name_is_whole_on_both_sides_of_the_index_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, false);
    let mut ids = Vec::new();
    for n in 0..30 {
        ids.push((n, store.insert(echo(n)).await.unwrap()));
    }
    store.close(); // indexes every name before it returns

    let expect = |name: &str, kind: Option<Kind>| -> Vec<String> {
        let mut v: Vec<String> = ids
            .iter()
            .filter(|(n, _)| echo(*n).name == name && kind.is_none_or(|k| echo(*n).kind == k))
            .map(|(_, id)| id.clone())
            .collect();
        v.reverse();
        v
    };
    let check = |what: &str| {
        for limit in [1, 4, 100] {
            for kind in [None, Some(Kind::Agent), Some(Kind::Workflow)] {
                for name in ["even", "odd"] {
                    assert_eq!(
                        list(&store, name, kind, limit),
                        expect(name, kind),
                        "{what}: {name} {kind:?} in pages of {limit}"
                    );
                }
            }
        }
    };
    check("all indexed");

    // Take the index back to the 12th run, as if the writer had died before indexing the rest.
    let conn = Connection::open(dir.path().join("restack.db")).unwrap();
    let through: i64 = conn
        .query_row("SELECT value FROM meta", [], |r| r.get(0))
        .unwrap();
    assert_eq!(Some(through), ids::seq_of(&ids.last().unwrap().1));
    let cut = ids::seq_of(&ids[11].1).unwrap();
    let dropped = conn
        .execute("DELETE FROM runs_by_name WHERE seq > ?1", [cut])
        .unwrap();
    assert_eq!(dropped, 18);
    conn.execute("UPDATE meta SET value = ?1", [cut]).unwrap();
    check("indexed through the 12th run");

    // A writer that starts on such a store finishes the index when it has nothing else to do.
    let store = open(&dir, false);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while conn
        .query_row("SELECT count(*) FROM runs_by_name", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap()
        < 30
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the index never caught up"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    store.close();
    let through: i64 = conn
        .query_row("SELECT value FROM meta", [], |r| r.get(0))
        .unwrap();
    assert_eq!(Some(through), ids::seq_of(&ids.last().unwrap().1));
}

/// Another process may checkpoint the database while the engine writes (the benchmark does, to
/// measure its size; so may a backup tool). The writer's transactions read before they write
/// (to find a run's row), and a deferred transaction that has read cannot become a writer once
/// the WAL has been reset under it: SQLite fails it at once with "database is locked", and the
/// whole group commit with it. Every write must still succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_another_connection_checkpointing_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, false);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let checkpointer = {
        let (path, stop) = (dir.path().join("restack.db"), stop.clone());
        std::thread::spawn(move || {
            let conn = Connection::open(path).unwrap();
            conn.busy_timeout(std::time::Duration::from_secs(5))
                .unwrap();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                    .unwrap();
                n += 1;
            }
            n
        })
    };
    let mut runs = Vec::new();
    for n in 0..200 {
        let mut run = echo(n);
        run.kind = Kind::Agent;
        runs.push(store.insert(run).await.unwrap());
    }
    let writes = runs.iter().map(|id| {
        let store = store.clone();
        let id = id.clone();
        tokio::spawn(async move {
            store
                .write(Op::Start {
                    id,
                    attempt: 1,
                    at: 1_700_000_000_001,
                    wake_at: None,
                    error: None,
                })
                .await
        })
    });
    for w in writes.collect::<Vec<_>>() {
        assert!(w.await.unwrap().unwrap(), "the start was not applied");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(checkpointer.join().unwrap() > 0);
    store.close();
}

/// Under a stream of schedules the writer indexes names in slices between commits; a listing
/// taken at any moment of it is whole, and the index is complete once the writer stops.
#[tokio::test]
async fn listing_by_name_is_whole_while_the_writer_indexes_a_stream_of_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, true);
    let mut ids = Vec::new();
    for n in 0..10_000 {
        let id = if n % 500 == 499 {
            store.insert(echo(n)).await.unwrap()
        } else {
            store.insert_later(echo(n)).unwrap()
        };
        ids.push((n, id));
        if n % 500 == 499 {
            let evens: Vec<String> = ids
                .iter()
                .rev()
                .filter(|(n, _)| echo(*n).name == "even")
                .map(|(_, id)| id.clone())
                .collect();
            assert_eq!(
                list(&store, "even", None, 300),
                evens,
                "after {} runs",
                n + 1
            );
        }
    }
    store.close();
    let conn = Connection::open(dir.path().join("restack.db")).unwrap();
    let (through, indexed): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT value FROM meta), (SELECT count(*) FROM runs_by_name)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(Some(through), ids::seq_of(&ids.last().unwrap().1));
    assert_eq!(indexed, 10_000);
}

/// Past the limit, a run's logs are its newest lines (where an agent says why it failed), in
/// the order they were written.
#[tokio::test]
async fn logs_past_the_limit_are_the_newest_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, false);
    let id = store.insert(echo(1)).await.unwrap();
    let lines = (0..5)
        .map(|i| NewLog {
            run_id: id.clone(),
            at: i,
            step: None,
            attempt: Some(1),
            line: format!("line {i}"),
        })
        .collect();
    store.write(Op::Logs(lines)).await.unwrap();
    let lines = |max_lines, max_bytes| {
        let (lines, omitted) = store.logs(&id, max_lines, max_bytes).unwrap();
        let text: Vec<String> = lines.into_iter().map(|l| l.line).collect();
        (text, omitted)
    };
    assert_eq!(
        lines(3, 1000),
        (vec!["line 2".into(), "line 3".into(), "line 4".into()], 2)
    );
    // Each line is 6 bytes: 13 hold two.
    assert_eq!(lines(10, 13), (vec!["line 3".into(), "line 4".into()], 3));
    // One line at least, however long.
    assert_eq!(lines(10, 1), (vec!["line 4".into()], 4));
    assert_eq!(lines(10, 1000).1, 0);
}

/// Runs the writer over `ops` as one batch (they are all waiting when it starts) until it
/// stops, and answers each write's reply.
fn one_batch(dir: &tempfile::TempDir, ops: Vec<Op>) -> Vec<Result<bool, String>> {
    let conn = Connection::open(dir.path().join("restack.db")).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let replies: Vec<_> = ops
        .into_iter()
        .map(|op| {
            let (reply, answer) = oneshot::channel();
            tx.send(writer::Job {
                op,
                reply: Some(reply),
            })
            .unwrap();
            answer
        })
        .collect();
    drop(tx);
    writer::run(
        conn,
        rx,
        Arc::new(Notifier::default()),
        Arc::new(writer::Commits::default()),
    );
    replies
        .into_iter()
        .map(|mut a| a.try_recv().expect("every write is answered"))
        .collect()
}

fn insert_op(mint: &mut ids::Mint, name: &str) -> Op {
    let (seq, id) = mint.next_id();
    Op::Insert {
        seq,
        id,
        run: NewRun {
            name: name.into(),
            ..echo(1)
        },
    }
}

fn count_runs(dir: &tempfile::TempDir, filter: &str) -> i64 {
    Connection::open(dir.path().join("restack.db"))
        .unwrap()
        .query_row(
            &format!("SELECT count(*) FROM runs WHERE {filter}"),
            [],
            |r| r.get(0),
        )
        .unwrap()
}

/// Some failures (a full disk, an I/O error) roll SQLite's whole transaction back, here
/// imitated by a trigger. The writes after it must not go on to commit one by one while their
/// callers are told they failed (a client would retry them into duplicates): the batch fails
/// as one, and none of it is stored.
#[test]
fn a_failure_that_rolls_back_the_transaction_fails_the_batch_and_stores_none_of_it() {
    let dir = tempfile::tempdir().unwrap();
    open(&dir, false).close();
    Connection::open(dir.path().join("restack.db"))
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER boom BEFORE INSERT ON runs WHEN NEW.name = 'boom'
             BEGIN SELECT RAISE(ROLLBACK, 'database or disk is full'); END;",
        )
        .unwrap();
    let mut mint = ids::Mint::after(0);
    let ops = ["before", "boom", "after"].map(|n| insert_op(&mut mint, n));
    let answers = one_batch(&dir, ops.into());
    assert!(answers.iter().all(|a| a.is_err()), "{answers:?}");
    assert!(
        answers[2].as_ref().unwrap_err().contains("disk is full"),
        "{answers:?}"
    );
    assert_eq!(
        count_runs(&dir, "1"),
        0,
        "a write answered as failed was stored"
    );
}

/// A run's end and its step rows are one write: when the steps cannot be written, the run is
/// not left ended without them (the executor's retry of the write would then change nothing),
/// and the other writes of the batch still commit.
#[tokio::test]
async fn a_write_that_fails_part_way_leaves_nothing_of_itself_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, false);
    let id = store
        .insert(NewRun {
            kind: Kind::Workflow,
            ..echo(1)
        })
        .await
        .unwrap();
    store.close();
    Connection::open(dir.path().join("restack.db"))
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER no_steps BEFORE INSERT ON steps
             BEGIN SELECT RAISE(ABORT, 'cannot write steps'); END;",
        )
        .unwrap();
    let finish = Op::Finish {
        id: id.clone(),
        status: RunStatus::Completed,
        output: Some("{}".into()),
        error: None,
        at: 1_700_000_000_100,
        canceled: false,
        steps: vec![StepWrite {
            run_id: id.clone(),
            idx: 0,
            status: RunStatus::Completed,
            output: Some("{}".into()),
            error: None,
            started_at: Some(1_700_000_000_050),
            completed_at: Some(1_700_000_000_100),
            wake_at: None,
            attempt: 1,
            step: Some("agent probe".into()),
        }],
    };
    let mut mint = ids::Mint::after(ids::seq_of(&id).unwrap());
    let answers = one_batch(&dir, vec![finish, insert_op(&mut mint, "after")]);
    assert!(
        answers[0]
            .as_ref()
            .is_err_and(|e| e.contains("cannot write steps")),
        "{answers:?}"
    );
    assert_eq!(answers[1], Ok(true));
    assert_eq!(
        count_runs(&dir, &format!("id = '{id}' AND status = 0")),
        1,
        "the workflow must still be queued, not ended without its steps"
    );
    assert_eq!(count_runs(&dir, "name = 'after'"), 1);
}

/// Start-up tells a workflow asleep by its run's `wake_at` alone: set by the step write that
/// starts a sleep, cleared by the next step write, and absent from the listing's inputs.
#[tokio::test]
async fn a_workflow_is_marked_asleep_only_while_its_sleep_step_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, false);
    let id = store.insert(echo(0)).await.unwrap(); // n = 0: a workflow
    let step = |status, wake_at| StepWrite {
        run_id: id.clone(),
        idx: 0,
        status,
        output: None,
        error: None,
        started_at: Some(1),
        completed_at: None,
        wake_at,
        attempt: 0,
        step: Some("sleep 1h".into()),
    };
    let asleep = |store: &Store| {
        let running = store.running_runs().unwrap();
        assert_eq!(running.len(), 1);
        assert_eq!(running[0].input, "", "listed without its input");
        running[0].wake_at
    };
    let sleep = step(RunStatus::Running, Some(9_000_000_000_000));
    assert!(store.write(Op::Steps(vec![sleep])).await.unwrap());
    assert_eq!(asleep(&store), Some(9_000_000_000_000));
    let slept = step(RunStatus::Completed, Some(9_000_000_000_000));
    assert!(store.write(Op::Steps(vec![slept])).await.unwrap());
    assert_eq!(asleep(&store), None, "its sleep is over");
    let whole = store.get_run(&id).unwrap().unwrap();
    assert_eq!(whole.input, "{\"n\":0}");
}

/// `startedAt` says the run started: one that fails or is canceled while queued never did; one
/// that ends after its start keeps that start (`coalesce`); an instant `echo` run completes as
/// it starts.
#[tokio::test]
async fn a_run_that_ends_while_queued_has_no_start_unless_it_completed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, false);
    let end = |id: &str, status, canceled| Op::Finish {
        id: id.to_string(),
        status,
        output: None,
        error: Some("canceled".into()),
        at: 1_700_000_000_100,
        canceled,
        steps: Vec::new(),
    };
    let started_at = |id: &str| store.get_run(id).unwrap().unwrap().started_at;
    for canceled in [true, false] {
        let queued = store.insert(echo(1)).await.unwrap();
        assert!(
            store
                .write(end(&queued, RunStatus::Failed, canceled))
                .await
                .unwrap()
        );
        assert_eq!(started_at(&queued), None, "canceled: {canceled}");
    }
    let running = store.insert(echo(1)).await.unwrap();
    let start = Op::Start {
        id: running.clone(),
        attempt: 1,
        at: 1_700_000_000_050,
        wake_at: None,
        error: None,
    };
    assert!(store.write(start).await.unwrap());
    assert!(
        store
            .write(end(&running, RunStatus::Failed, true))
            .await
            .unwrap()
    );
    assert_eq!(started_at(&running), Some(1_700_000_000_050));
    let instant = store.insert(echo(1)).await.unwrap();
    assert!(
        store
            .write(end(&instant, RunStatus::Completed, false))
            .await
            .unwrap()
    );
    assert_eq!(started_at(&instant), Some(1_700_000_000_100));
}

#[test]
fn the_listing_without_bodies_keeps_every_other_column_in_its_place() {
    let whole: Vec<&str> = RUN_COLUMNS.split(", ").collect();
    let light: Vec<&str> = RUN_COLUMNS_WITHOUT_BODIES.split(", ").collect();
    assert_eq!(whole.len(), light.len());
    for (i, (w, l)) in whole.iter().zip(&light).enumerate() {
        if !(4..=6).contains(&i) {
            assert_eq!(w, l, "column {i}");
        }
    }
    assert_eq!(&whole[4..=6], ["r.input", "r.output", "r.error"]);
}
