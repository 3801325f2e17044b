//! Outages and restarts: what was accepted is delivered once the server is back, or
//! after the process is killed and started again; an outage longer than the bounds
//! drops the oldest, counts them and keeps the queue bounded; shutdown never hangs.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use backstop_core::{Client, Event, Level, Options};
use backstop_sentry::{Category, Reason, SentryExporter};
use backstop_store::{Outbox, OutboxLimits, SqliteStore};
use support::{Action, Receiver};

const PATIENCE: Duration = Duration::from_secs(120);

fn ok() -> Action {
    Action::Answer(200, Vec::new())
}

/// An address nothing listens on (yet).
fn down() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn dsn(addr: SocketAddr) -> String {
    format!("http://public@{addr}/42")
}

fn capture(client: &Client, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let mut event = Event::new(Level::Error);
            event.message = Some(format!("during the outage {i}"));
            client.capture_event(event).to_string()
        })
        .collect()
}

fn delivered(receiver: &Receiver) -> BTreeSet<String> {
    receiver
        .received()
        .iter()
        .filter(|r| r.status == 200)
        .filter_map(|r| r.event_id())
        .collect()
}

#[test]
fn events_captured_while_the_receiver_is_down_for_30_s_all_arrive_once_it_is_back() {
    let addr = down();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("backstop.db");
    let exporter = SentryExporter::builder(dsn(addr).parse().unwrap())
        .outbox(&db)
        .backoff(Duration::from_millis(100), Duration::from_secs(2))
        .build()
        .unwrap();
    let export = exporter.handle();
    let backstop = backstop_core::test::start(
        Options::new()
            .sink(SqliteStore::open(&db).unwrap())
            .sink(exporter)
            .console(false)
            .install_panic_hook(false),
    )
    .unwrap();
    let ids: BTreeSet<String> = capture(&backstop, 1000).into_iter().collect();
    assert!(backstop.flush(Duration::from_secs(60)));
    assert_eq!(export.stats().queued, 1000, "all waiting in the outbox");
    std::thread::sleep(Duration::from_secs(30));
    assert!(export.stats().retries > 0, "it kept trying");
    let receiver = Receiver::start_at(addr, |_| ok());
    let deadline = Instant::now() + PATIENCE;
    while delivered(&receiver).len() < 1000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(delivered(&receiver), ids);
    assert!(export.wait_delivered(PATIENCE));
    let stats = export.stats();
    assert_eq!(stats.events_sent, 1000);
    assert!(stats.dropped.is_empty(), "{stats:?}");
}

/// `target/<profile>/examples/outbox_child`. `cargo test` builds the examples with the
/// tests; when only this test was built, it is built here.
fn child_exe() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let child = dir.join("examples").join("outbox_child");
    if !child.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "-p",
                "backstop-sentry",
                "--example",
                "outbox_child",
            ])
            .status()
            .unwrap();
        assert!(status.success(), "cannot build the outbox_child example");
    }
    assert!(child.exists(), "{} is missing", child.display());
    child
}

/// Runs the child on `db` and `dsn`, captures `count` events; returns their ids and the
/// running child once it has flushed them.
fn run_child(db: &Path, dsn: &str, count: usize) -> (std::process::Child, Vec<String>) {
    let mut child = Command::new(child_exe())
        .args([db.to_str().unwrap(), dsn, &count.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ids = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line == "ready" {
            return (child, ids);
        }
        ids.push(line);
    }
    panic!("the child ended before it was ready: {:?}", child.wait());
}

#[test]
fn events_in_the_outbox_of_a_killed_process_are_delivered_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("backstop.db");
    let (mut child, ids) = run_child(&db, &dsn(down()), 200);
    // SIGKILL: no shutdown, no flush, nothing but what is on disk.
    child.kill().unwrap();
    child.wait().unwrap();
    let outbox = Outbox::open(&db, OutboxLimits::default()).unwrap();
    assert_eq!(outbox.len().unwrap().items, 200);
    drop(outbox);

    let receiver = Receiver::start(|_| ok());
    let (mut child, none) = run_child(&db, &receiver.dsn(), 0);
    assert!(none.is_empty());
    let deadline = Instant::now() + PATIENCE;
    while delivered(&receiver).len() < 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        delivered(&receiver),
        ids.into_iter().collect::<BTreeSet<_>>()
    );
    let outbox = Outbox::open(&db, OutboxLimits::default()).unwrap();
    assert_eq!(
        outbox.len().unwrap().items,
        0,
        "delivered items leave the outbox"
    );
}

fn overflow(outbox: bool) {
    let addr = down();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("backstop.db");
    let limits = OutboxLimits {
        max_items: 100,
        max_bytes: 10_000_000,
    };
    let mut builder = SentryExporter::builder(dsn(addr).parse().unwrap())
        .limits(limits)
        .backoff(Duration::from_millis(100), Duration::from_millis(500))
        .client_report_interval(Duration::from_millis(100));
    if outbox {
        builder = builder.outbox(&db);
    }
    let exporter = builder.build().unwrap();
    let export = exporter.handle();
    let backstop = backstop_core::test::start(
        Options::new()
            .sink(exporter)
            .console(false)
            .install_panic_hook(false),
    )
    .unwrap();
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.extend(capture(&backstop, 50));
        assert!(backstop.flush(Duration::from_secs(30)));
        assert!(
            export.stats().queued <= 100,
            "bounded: {:?}",
            export.stats()
        );
    }
    let stats = export.stats();
    assert_eq!(stats.queued, 100);
    assert_eq!(stats.dropped(Reason::QueueOverflow, Category::Error), 400);

    let receiver = Receiver::start_at(addr, |_| ok());
    let received = receiver.wait_for(PATIENCE, |r| {
        support::reported(r, "queue_overflow", "error") == 400
            && r.iter().filter(|e| e.event_id().is_some()).count() >= 100
    });
    let newest: BTreeSet<String> = ids[400..].iter().cloned().collect();
    assert_eq!(
        delivered(&receiver),
        newest,
        "the oldest were dropped first"
    );
    assert_eq!(support::reported(&received, "queue_overflow", "error"), 400);
}

#[test]
fn an_outage_longer_than_the_outbox_bound_drops_the_oldest_and_counts_them() {
    overflow(true);
}

#[test]
fn without_the_store_a_bounded_memory_queue_drops_the_oldest_and_counts_them() {
    overflow(false);
}

#[test]
fn shutdown_waits_no_longer_than_its_timeout_for_a_stuck_server() {
    let receiver = Receiver::start(|_| Action::Late(Duration::from_secs(120)));
    let exporter = SentryExporter::builder(receiver.dsn().parse().unwrap())
        .request_timeout(Duration::from_secs(60))
        .shutdown_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let export = exporter.handle();
    let backstop = backstop_core::test::start(
        Options::new()
            .sink(exporter)
            .shutdown_timeout(Duration::from_secs(1))
            .console(false)
            .install_panic_hook(false),
    )
    .unwrap();
    capture(&backstop, 5);
    receiver.wait_for(PATIENCE, |r| !r.is_empty() || receiver.requests() > 0);
    let started = Instant::now();
    drop(backstop);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    assert_eq!(export.stats().events_sent, 0);
}
