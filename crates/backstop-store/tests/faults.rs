//! Write failures: a full disk, a removed file or directory, a lock held too long. Each
//! drops the batch, is counted and logged (at most once a minute), and writes resume
//! once the cause clears.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backstop_core::{Options, Record};
use backstop_store::{IssueQuery, Retention, SqliteStore, StoreError};
use common::*;
use rusqlite::{Connection, ErrorCode};

const KEEP_ALL: Retention = Retention {
    max_age: None,
    max_transactions: None,
    max_events_per_issue: None,
};

fn batch(n: usize) -> Vec<Record> {
    (0..n)
        .map(|_| tx(transaction("GET /fill", Duration::from_millis(3), 4, 1)))
        .collect()
}

fn integrity(path: &Path) -> String {
    Connection::open(path)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_full_database_drops_the_batch_and_resumes_when_room_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.db");
    // max_page_count gives SQLite's real SQLITE_FULL, as a full disk does.
    let mut store = SqliteStore::builder(&path)
        .retention(KEEP_ALL)
        .no_keep_budget()
        .max_size(512 * 1024)
        .open()
        .unwrap();
    let reader = store.reader();
    let mut written = 0;
    let err = loop {
        match store.write(&batch(50)) {
            Ok(()) => written += 50,
            Err(err) => break err,
        }
        assert!(written < 100_000, "the cap never hit");
    };
    assert_eq!(err.sqlite_code(), Some(ErrorCode::DiskFull), "{err}");
    assert!(err.to_string().contains("full.db"), "{err}");
    let stats = store.stats();
    assert_eq!(stats.batches_failed, 1);
    assert_eq!(stats.transactions_dropped, 50);
    assert!(stats.last_error.is_some());
    // Nothing of the failed batch is half-written, and readers still work.
    assert_eq!(reader.transaction_count().unwrap(), written);
    assert!(store.write(&batch(50)).is_err(), "still full");

    // Make room, as an operator would.
    Connection::open(&path)
        .unwrap()
        .execute_batch("DELETE FROM spans; DELETE FROM transactions;")
        .unwrap();
    store.write(&batch(50)).unwrap();
    assert_eq!(reader.transaction_count().unwrap(), 50);
    assert_eq!(store.stats().batches_failed, 2);
    drop(store);
    assert_eq!(integrity(&path), "ok");
}

/// A tmpfs of a few hundred KiB: a really full file system. Needs `mount` (root in a
/// sandbox that allows it); skipped otherwise.
struct TinyFs(std::path::PathBuf);

impl TinyFs {
    fn mount(at: &Path, size: &str) -> Option<TinyFs> {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| TinyFs(at.to_owned()))
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_full_file_system_drops_batches_and_resumes_when_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_fs) = TinyFs::mount(dir.path(), "1m") else {
        eprintln!("skipped: cannot mount a tmpfs here");
        return;
    };
    // Ballast to delete later, standing in for whatever filled the disk.
    let ballast = dir.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; 512 * 1024]).unwrap();
    let path = dir.path().join("tiny.db");
    let mut store = SqliteStore::builder(&path)
        .retention(KEEP_ALL)
        .no_keep_budget()
        .open()
        .unwrap();
    let reader = store.reader();
    let mut failures = 0;
    let mut written = 0;
    for _ in 0..200 {
        match store.write(&batch(20)) {
            Ok(()) => written += 20,
            Err(err) => {
                failures += 1;
                assert!(err.to_string().contains("tiny.db"), "{err}");
                if failures == 3 {
                    break;
                }
            }
        }
    }
    assert_eq!(failures, 3, "the file system never filled up");
    assert_eq!(store.stats().batches_failed, 3);
    assert_eq!(reader.transaction_count().unwrap(), written);

    std::fs::remove_file(&ballast).unwrap();
    store.write(&batch(20)).unwrap();
    assert_eq!(reader.transaction_count().unwrap(), written + 20);
    drop(store);
    assert_eq!(integrity(&path), "ok");
}

#[test]
fn a_removed_file_is_recreated_and_writes_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("backstop.db");
    let mut store = SqliteStore::open(&path).unwrap();
    let reader = store.reader();
    store.write(&batch(5)).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    // SQLite would happily write on into the unlinked inode; the store follows the path.
    store.write(&batch(3)).unwrap();
    assert!(path.exists());
    assert_eq!(reader.transaction_count().unwrap(), 3);
    assert_eq!(store.stats().reopens, 1);
    drop(store);
    assert_eq!(integrity(&path), "ok");
}

#[test]
fn a_removed_directory_fails_writes_until_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("data");
    std::fs::create_dir(&sub).unwrap();
    let path = sub.join("backstop.db");
    let mut store = SqliteStore::open(&path).unwrap();
    store.write(&batch(5)).unwrap();

    std::fs::remove_dir_all(&sub).unwrap();
    for _ in 0..3 {
        let err = store.write(&batch(5)).unwrap_err();
        assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
        assert!(err.to_string().contains("backstop.db"), "{err}");
    }
    assert_eq!(store.stats().batches_failed, 3);
    assert_eq!(store.stats().transactions_dropped, 15);

    std::fs::create_dir(&sub).unwrap();
    store.write(&batch(2)).unwrap();
    assert_eq!(store.reader().transaction_count().unwrap(), 2);
}

#[test]
fn a_lock_held_too_long_drops_the_batch_then_writes_resume() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("backstop.db");
    let mut store = SqliteStore::builder(&path)
        .busy_timeout(Duration::from_millis(100))
        .open()
        .unwrap();
    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = store.write(&batch(4)).unwrap_err();
    assert_eq!(err.sqlite_code(), Some(ErrorCode::DatabaseBusy), "{err}");
    other.execute_batch("COMMIT").unwrap();
    store.write(&batch(4)).unwrap();
    let stats = store.stats();
    assert_eq!((stats.batches_failed, stats.batches_written), (1, 1));
    assert_eq!(store.reader().transaction_count().unwrap(), 4);
}

/// Counts `ERROR` events from the `backstop` target.
struct ErrorCounter(Arc<AtomicUsize>);

impl tracing::Subscriber for ErrorCounter {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let meta = event.metadata();
        if *meta.level() == tracing::Level::ERROR && meta.target() == "backstop" {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn failures_are_logged_at_most_once_a_minute() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("data");
    std::fs::create_dir(&sub).unwrap();
    let mut store = SqliteStore::open(sub.join("backstop.db")).unwrap();
    std::fs::remove_dir_all(&sub).unwrap();
    let errors = Arc::new(AtomicUsize::new(0));
    tracing::subscriber::with_default(ErrorCounter(errors.clone()), || {
        for _ in 0..10 {
            assert!(store.write(&batch(1)).is_err());
        }
    });
    assert_eq!(errors.load(Ordering::Relaxed), 1);
    assert_eq!(store.stats().batches_failed, 10);
}

#[test]
fn in_the_pipeline_a_failing_store_is_counted_and_the_process_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("data");
    std::fs::create_dir(&sub).unwrap();
    let store = SqliteStore::open(sub.join("backstop.db")).unwrap();
    let counters = store.counters();
    let reader = store.reader();
    let backstop = backstop_core::test::start(
        Options::new()
            .sink(store)
            .console(false)
            .install_panic_hook(false),
    )
    .unwrap();
    let capture = |msg: &str| {
        backstop.capture_event(error_event(msg, msg));
        assert!(backstop.flush(Duration::from_secs(10)));
    };
    capture("before");
    std::fs::remove_dir_all(&sub).unwrap();
    capture("during");
    capture("during again");
    let stats = backstop.stats();
    assert_eq!(stats.events.dropped_sink_failed, 2);
    assert_eq!(counters.snapshot().events_dropped, 2);

    std::fs::create_dir(&sub).unwrap();
    capture("after");
    assert_eq!(backstop.stats().events.sent, 2);
    let titles: Vec<_> = reader
        .issues(&IssueQuery::new())
        .unwrap()
        .into_iter()
        .map(|i| i.title)
        .collect();
    assert_eq!(
        titles,
        ["AppError: after"],
        "a fresh file after the directory came back"
    );
}
