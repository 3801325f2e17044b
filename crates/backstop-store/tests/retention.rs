//! Retention at volume: half a million transactions with `max_transactions` 10,000.

mod common;

use std::time::{Duration, Instant};

use backstop_core::EventId;
use backstop_store::SqliteStore;
use common::*;

fn file_size(path: &std::path::Path) -> u64 {
    let wal = format!("{}-wal", path.display());
    std::fs::metadata(path).unwrap().len() + std::fs::metadata(wal).map_or(0, |m| m.len())
}

#[test]
fn half_a_million_transactions_keep_ten_thousand_and_the_file_stops_growing() {
    const TOTAL: usize = 500_000;
    const BATCH: usize = 500;
    const MAX: u64 = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("retention.db");
    let mut store = SqliteStore::builder(&path)
        .max_transactions(MAX)
        .no_keep_budget()
        .open()
        .unwrap();
    let reader = store.reader();
    let template = transaction("GET /items/{id}", Duration::from_millis(4), 1, 0);
    let started = Instant::now();
    let mut sizes = Vec::new();
    for i in 0..TOTAL / BATCH {
        let batch: Vec<_> = (0..BATCH)
            .map(|_| {
                let mut t = template.clone();
                t.event_id = EventId::new();
                tx(t)
            })
            .collect();
        store.write(&batch).unwrap();
        // Pruning runs after every batch: the table never runs far past the limit.
        if (i + 1) % 100 == 0 {
            assert!(reader.transaction_count().unwrap() <= MAX);
            store.compact().unwrap();
            sizes.push(file_size(&path));
        }
    }
    let kept = reader.transaction_count().unwrap();
    assert!(kept <= MAX, "{kept}");
    assert!(kept >= MAX - BATCH as u64, "{kept}");
    let stats = store.stats();
    assert_eq!(stats.transactions_written, TOTAL as u64);
    assert_eq!(stats.transactions_pruned, TOTAL as u64 - kept);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let spans: i64 = conn
        .query_row("SELECT count(*) FROM spans", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        spans as u64, kept,
        "one span each, pruned with its transaction"
    );

    // Sizes after every 50,000: after the first, the file holds steady.
    let first = sizes[0];
    let largest = *sizes.iter().max().unwrap();
    assert!(
        largest <= first + first / 10,
        "the file kept growing: {sizes:?}"
    );
    assert!(sizes.last().unwrap() <= &(first + first / 10), "{sizes:?}");
    eprintln!(
        "500k transactions in {:?}; sizes after each 50k: {sizes:?}",
        started.elapsed()
    );
}
