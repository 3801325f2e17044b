//! Crash safety: a child process ingests through a real client in a loop and is killed
//! with SIGKILL. The file must pass `integrity_check`, and every batch that `flush()`
//! acknowledged must be there.
//!
//! The child is this test binary again, running `crash_child` with an environment
//! variable set; without it, `crash_child` does nothing.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use backstop_core::protocol::{Span, SpanId, SpanStatus};
use backstop_core::{Event, Level, Options, RequestScope};
use backstop_store::{Retention, SqliteStore};
use rusqlite::Connection;

const DB_ENV: &str = "BACKSTOP_STORE_CRASH_DB";
const ROUND_ENV: &str = "BACKSTOP_STORE_CRASH_ROUND";
const PER_BATCH: usize = 20;

#[test]
fn crash_child() {
    let Ok(path) = std::env::var(DB_ENV) else {
        return;
    };
    let round = std::env::var(ROUND_ENV).unwrap();
    let store = SqliteStore::builder(&path)
        .retention(Retention {
            max_age: None,
            max_transactions: None,
            max_events_per_issue: None,
        })
        .open()
        .unwrap();
    let counters = store.counters();
    let backstop = backstop_core::test::start(
        Options::new()
            .sink(store)
            .console(false)
            .install_panic_hook(false)
            .queue_capacity(10_000),
    )
    .unwrap();
    let client = backstop.client().clone();
    let mut stdout = std::io::stdout();
    for batch in 0.. {
        let name = format!("r{round}-b{batch}");
        for _ in 0..PER_BATCH {
            let scope = RequestScope::builder(&client, name.clone())
                .op("http.server")
                .sampled(true)
                .start();
            for i in 0..3 {
                let now = SystemTime::now();
                scope.add_span(Span {
                    span_id: SpanId::new(),
                    trace_id: scope.trace_id(),
                    parent_span_id: Some(scope.span_id()),
                    op: Some("db.sql.query".into()),
                    description: Some(format!("SELECT {i}")),
                    status: Some(SpanStatus::Ok),
                    start_timestamp: now,
                    timestamp: now,
                    tags: Default::default(),
                    data: Default::default(),
                });
            }
            scope.finish_http(200);
        }
        let mut event = Event::new(Level::Error);
        event.message = Some(name.clone());
        client.capture_event(event);
        let flushed = client.flush(Duration::from_secs(30));
        let stats = client.stats();
        if flushed
            && stats.events.dropped() == 0
            && stats.transactions.dropped() == 0
            && counters.snapshot().batches_failed == 0
        {
            writeln!(stdout, "ack {name}").unwrap();
            stdout.flush().unwrap();
        }
    }
}

/// Runs one child until it has acknowledged `acks` batches, then SIGKILLs it. Returns
/// every batch it acknowledged.
fn run_and_kill(path: &std::path::Path, round: usize, acks: usize) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(DB_ENV, path)
        .env(ROUND_ENV, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let lines = std::thread::spawn(move || {
        let mut acked = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(name) = line.strip_prefix("ack ") {
                acked.push(name.to_owned());
                let _ = tx.send(());
            }
        }
        acked
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    for _ in 0..acks {
        let left = deadline.saturating_duration_since(Instant::now());
        if rx.recv_timeout(left).is_err() {
            let _ = child.kill();
            panic!("the child stopped acknowledging");
        }
    }
    // Land the kill somewhere inside the next batches, not right after an ack.
    std::thread::sleep(Duration::from_millis(3 * round as u64 + 1));
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    lines.join().unwrap()
}

#[test]
fn sigkill_loses_no_acknowledged_batch_and_leaves_a_sound_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let mut acked = Vec::new();
    for round in 0..3 {
        acked.extend(run_and_kill(&path, round, 40));

        let conn = Connection::open(&path).unwrap();
        let integrity: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(integrity, "ok", "after round {round}");
        let mut count_tx = conn
            .prepare("SELECT count(*), sum(span_count) FROM transactions WHERE name = ?1")
            .unwrap();
        let mut count_events = conn
            .prepare("SELECT count(*) FROM events WHERE title = ?1")
            .unwrap();
        for name in &acked {
            let (n, spans): (i64, i64) = count_tx
                .query_row([name], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap();
            assert_eq!(n as usize, PER_BATCH, "transactions of acknowledged {name}");
            assert_eq!(
                spans as usize,
                PER_BATCH * 3,
                "spans of acknowledged {name}"
            );
            let events: i64 = count_events.query_row([name], |r| r.get(0)).unwrap();
            assert_eq!(events, 1, "event of acknowledged {name}");
        }
        let spans: i64 = conn
            .query_row("SELECT count(*) FROM spans", [], |r| r.get(0))
            .unwrap();
        let expected: i64 = conn
            .query_row("SELECT sum(span_count) FROM transactions", [], |r| r.get(0))
            .unwrap();
        assert_eq!(spans, expected, "no half-written transaction");
        drop(count_tx);
        drop(count_events);
        drop(conn);
        // And the store opens it again for the next round.
        drop(SqliteStore::open(&path).unwrap());
    }
    assert!(acked.len() >= 120);
}
