//! The store's own counters, kept beside the pipeline's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

/// A shared handle to the store's counters. Keep one (from
/// [`SqliteStore::counters`](crate::SqliteStore::counters) or
/// [`StoreReader::write_stats`](crate::StoreReader::write_stats)) after the store has
/// moved into the pipeline.
#[derive(Debug, Clone, Default)]
pub struct StoreCounters {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    batches_written: AtomicU64,
    batches_failed: AtomicU64,
    events_written: AtomicU64,
    transactions_written: AtomicU64,
    events_dropped: AtomicU64,
    transactions_dropped: AtomicU64,
    transactions_over_budget: AtomicU64,
    events_pruned: AtomicU64,
    transactions_pruned: AtomicU64,
    issues_pruned: AtomicU64,
    reopens: AtomicU64,
    last_error: Mutex<Option<String>>,
    last_prune: Mutex<Option<SystemTime>>,
}

/// A snapshot of what the store wrote, dropped and pruned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct StoreStats {
    /// Batches committed.
    pub batches_written: u64,
    /// Batches lost to a failed write (disk full, file removed, locked too long...).
    pub batches_failed: u64,
    /// Events committed.
    pub events_written: u64,
    /// Transactions committed.
    pub transactions_written: u64,
    /// Events in failed batches.
    pub events_dropped: u64,
    /// Transactions in failed batches.
    pub transactions_dropped: u64,
    /// Transactions not kept, or no longer kept, by the keep budget
    /// ([`KeepBudget`](crate::KeepBudget)): route metrics count them all the same.
    pub transactions_over_budget: u64,
    /// Events deleted by retention.
    pub events_pruned: u64,
    /// Transactions deleted by retention.
    pub transactions_pruned: u64,
    /// Issues deleted by retention (no event within `max_age`).
    pub issues_pruned: u64,
    /// Times the writer reopened the database after a failure or after the file was
    /// replaced.
    pub reopens: u64,
    /// The latest write failure, if any.
    pub last_error: Option<String>,
    /// When retention last finished a pass.
    pub last_prune: Option<SystemTime>,
}

impl StoreCounters {
    /// The counters now.
    pub fn snapshot(&self) -> StoreStats {
        let i = &*self.inner;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StoreStats {
            batches_written: get(&i.batches_written),
            batches_failed: get(&i.batches_failed),
            events_written: get(&i.events_written),
            transactions_written: get(&i.transactions_written),
            events_dropped: get(&i.events_dropped),
            transactions_dropped: get(&i.transactions_dropped),
            transactions_over_budget: get(&i.transactions_over_budget),
            events_pruned: get(&i.events_pruned),
            transactions_pruned: get(&i.transactions_pruned),
            issues_pruned: get(&i.issues_pruned),
            reopens: get(&i.reopens),
            last_error: i
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            last_prune: *i.last_prune.lock().unwrap_or_else(PoisonError::into_inner),
        }
    }

    pub(crate) fn written(&self, events: u64, transactions: u64) {
        let i = &*self.inner;
        i.batches_written.fetch_add(1, Ordering::Relaxed);
        i.events_written.fetch_add(events, Ordering::Relaxed);
        i.transactions_written
            .fetch_add(transactions, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self, events: u64, transactions: u64, error: String) {
        let i = &*self.inner;
        i.batches_failed.fetch_add(1, Ordering::Relaxed);
        i.events_dropped.fetch_add(events, Ordering::Relaxed);
        i.transactions_dropped
            .fetch_add(transactions, Ordering::Relaxed);
        *i.last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(error);
    }

    pub(crate) fn over_budget(&self, transactions: u64) {
        self.inner
            .transactions_over_budget
            .fetch_add(transactions, Ordering::Relaxed);
    }

    pub(crate) fn pruned(&self, events: u64, transactions: u64, issues: u64) {
        let i = &*self.inner;
        i.events_pruned.fetch_add(events, Ordering::Relaxed);
        i.transactions_pruned
            .fetch_add(transactions, Ordering::Relaxed);
        i.issues_pruned.fetch_add(issues, Ordering::Relaxed);
    }

    pub(crate) fn prune_finished(&self, at: SystemTime) {
        *self
            .inner
            .last_prune
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(at);
    }

    pub(crate) fn reopened(&self) {
        self.inner.reopens.fetch_add(1, Ordering::Relaxed);
    }
}
