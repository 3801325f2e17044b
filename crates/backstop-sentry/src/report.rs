//! What was dropped, by reason and category: sent to the server in client reports, and
//! kept in totals for [`ExportStats`].

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use crate::envelope::{Category, Kind};

/// Why items were dropped, as client reports name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// A full queue: the outbox's bounds, or the pipeline's queue.
    QueueOverflow,
    /// A category the server rate-limited.
    RatelimitBackoff,
    /// Undelivered at shutdown because the server could not be reached (without an
    /// outbox only: with one they wait for the next start).
    NetworkError,
    /// The server refused it (a 4xx other than 429), or it could not be serialised.
    SendError,
    /// `before_send` or `before_send_transaction` dropped it.
    BeforeSend,
    /// Sampled out.
    SampleRate,
    /// Over a transaction's span limit.
    BufferOverflow,
}

impl Reason {
    /// Sentry's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::QueueOverflow => "queue_overflow",
            Reason::RatelimitBackoff => "ratelimit_backoff",
            Reason::NetworkError => "network_error",
            Reason::SendError => "send_error",
            Reason::BeforeSend => "before_send",
            Reason::SampleRate => "sample_rate",
            Reason::BufferOverflow => "buffer_overflow",
        }
    }
}

/// A snapshot of what the exporter did, from [`ExportHandle::stats`](crate::ExportHandle::stats).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportStats {
    /// Events the server accepted.
    pub events_sent: u64,
    /// Transactions the server accepted.
    pub transactions_sent: u64,
    /// Sends that failed in a way worth retrying (network, timeout, 5xx).
    pub retries: u64,
    /// Envelopes the server answered with 429 (the server counts those itself, so they
    /// are not in client reports).
    pub rejected_rate_limited: u64,
    /// Client reports delivered.
    pub client_reports_sent: u64,
    /// Items waiting for delivery.
    pub queued: u64,
    /// Every drop, by reason and category.
    pub dropped: BTreeMap<(Reason, Category), u64>,
}

impl ExportStats {
    /// Drops for one reason and category.
    pub fn dropped(&self, reason: Reason, category: Category) -> u64 {
        self.dropped.get(&(reason, category)).copied().unwrap_or(0)
    }
}

/// Counts by reason and category.
pub(crate) type Counts = BTreeMap<(Reason, Category), u64>;

/// Drops not yet reported, and the totals.
#[derive(Default)]
pub(crate) struct Outcomes {
    pending: Mutex<Counts>,
    totals: Mutex<Counts>,
    pub(crate) events_sent: AtomicU64,
    pub(crate) transactions_sent: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) rejected_rate_limited: AtomicU64,
    pub(crate) client_reports_sent: AtomicU64,
}

impl Outcomes {
    pub(crate) fn record(&self, reason: Reason, category: Category, n: u64) {
        if n == 0 {
            return;
        }
        for map in [&self.pending, &self.totals] {
            *lock(map).entry((reason, category)).or_default() += n;
        }
    }

    /// A dropped item: its own category, and a transaction's spans under `span`: its
    /// child spans and its root span, which Sentry counts as one more.
    pub(crate) fn dropped(&self, reason: Reason, kind: Kind, spans: u64) {
        self.record(reason, kind.category(), 1);
        if kind == Kind::Transaction {
            self.record(reason, Category::Span, spans + 1);
        }
    }

    pub(crate) fn sent(&self, kind: Kind) {
        match kind {
            Kind::Event => &self.events_sent,
            Kind::Transaction => &self.transactions_sent,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    /// The pending drops as a client report payload, taken out of pending; `None` when
    /// there are none. [`Outcomes::restore`] puts them back if the report is not sent.
    pub(crate) fn take_report(&self) -> Option<(Vec<u8>, Counts)> {
        let pending = std::mem::take(&mut *lock(&self.pending));
        if pending.is_empty() {
            return None;
        }
        let discarded: Vec<_> = pending
            .iter()
            .map(|((reason, category), quantity)| {
                serde_json::json!({
                    "reason": reason.as_str(),
                    "category": category.as_str(),
                    "quantity": quantity,
                })
            })
            .collect();
        let timestamp = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let payload = serde_json::to_vec(&serde_json::json!({
            "timestamp": timestamp,
            "discarded_events": discarded,
        }))
        .unwrap_or_default();
        Some((payload, pending))
    }

    pub(crate) fn restore(&self, counts: Counts) {
        let mut pending = lock(&self.pending);
        for (key, n) in counts {
            *pending.entry(key).or_default() += n;
        }
    }

    pub(crate) fn snapshot(&self, queued: u64) -> ExportStats {
        ExportStats {
            events_sent: self.events_sent.load(Ordering::Relaxed),
            transactions_sent: self.transactions_sent.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            rejected_rate_limited: self.rejected_rate_limited.load(Ordering::Relaxed),
            client_reports_sent: self.client_reports_sent.load(Ordering::Relaxed),
            queued,
            dropped: lock(&self.totals).clone(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
