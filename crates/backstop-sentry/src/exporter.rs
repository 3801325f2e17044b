//! [`SentryExporter`], the pipeline sink, and [`ExportHandle`], what stays in the
//! application's hands once the sink has moved into the pipeline.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backstop_core::{Client, Dsn, Record, Sink, SinkError};
use backstop_store::{Outbox, OutboxLimits, StoreError};

use crate::envelope::{Item, Kind};
use crate::queue::{MEMORY_LIMITS, Queue};
use crate::report::{ExportStats, Reason};
use crate::sender::{Sender, Shared, Timing, Transport};

/// Why an exporter could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The DSN is malformed.
    #[error("invalid `dsn`: {0}")]
    Dsn(#[from] backstop_core::InvalidDsn),
    /// The outbox could not be opened in the store's file.
    #[error("cannot open the export outbox: {0}")]
    Outbox(#[from] StoreError),
    /// The sender thread could not be started.
    #[error("cannot start the Sentry sender thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Builds a [`SentryExporter`]; see [`SentryExporter::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ExporterBuilder {
    dsn: Dsn,
    outbox: Option<PathBuf>,
    limits: Option<OutboxLimits>,
    timing: Timing,
    shutdown_timeout: Duration,
}

impl ExporterBuilder {
    /// Keeps undelivered items in the outbox table of the store at `path` (the file a
    /// [`SqliteStore`](backstop_store::SqliteStore) writes), so they survive an outage
    /// and a restart. Without it they wait in memory.
    pub fn outbox(mut self, path: impl Into<PathBuf>) -> Self {
        self.outbox = Some(path.into());
        self
    }

    /// How many items (and payload bytes) may wait; past that the oldest are dropped
    /// and counted (`queue_overflow`). Default: 10,000 items, 100 MB.
    pub fn limits(mut self, limits: OutboxLimits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// How long one request to the server may take, connecting included (default 30 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.timing.request_timeout = timeout;
        self
    }

    /// The first and the longest wait between retries (default 1 s and 5 minutes); the
    /// wait doubles after each failure, with jitter.
    pub fn backoff(mut self, first: Duration, max: Duration) -> Self {
        self.timing.min_backoff = first.max(Duration::from_millis(1));
        self.timing.max_backoff = max.max(self.timing.min_backoff);
        self
    }

    /// How often drops are reported to the server in a client report (default 30 s).
    pub fn client_report_interval(mut self, interval: Duration) -> Self {
        self.timing.report_interval = interval;
        self
    }

    /// How many envelopes may be in flight at once, each on its own keep-alive
    /// connection (default 4). Sentry takes one event or transaction per envelope, so
    /// this is what lets the sender keep up with a busy service.
    pub fn connections(mut self, connections: usize) -> Self {
        self.timing.connections = connections.max(1);
        self
    }

    /// How long delivery may go on when the exporter is dropped at shutdown (default
    /// 2 s, like [`Options::shutdown_timeout`](backstop_core::Options::shutdown_timeout)).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Opens the outbox (if any) and starts the sender thread.
    pub fn build(self) -> Result<SentryExporter, ExportError> {
        let queue = match &self.outbox {
            Some(path) => Queue::Outbox(Outbox::open(path, self.limits.unwrap_or_default())?),
            None => Queue::memory(self.limits.unwrap_or(MEMORY_LIMITS)),
        };
        let shared = Arc::new(Shared::new(queue));
        let sender = Sender::new(
            shared.clone(),
            Transport::new(
                &self.dsn,
                self.timing.request_timeout,
                self.timing.connections,
            ),
            self.timing,
        );
        std::thread::Builder::new()
            .name("backstop-sentry".into())
            .spawn(move || sender.run())
            .map_err(ExportError::Thread)?;
        Ok(SentryExporter {
            shared,
            shutdown_timeout: self.shutdown_timeout,
        })
    }
}

/// The Sentry exporter: a pipeline [`Sink`] that turns each event and transaction into
/// an envelope item, queues it (in the store's outbox when there is one), and has a
/// sender thread deliver it.
///
/// [`install`](crate::install) adds one when a DSN is configured; build one by hand
/// for other settings:
///
/// ```no_run
/// use backstop_core::Options;
/// use backstop_sentry::SentryExporter;
///
/// let dsn = "https://key@sentry.example.com/42".parse().unwrap();
/// let exporter = SentryExporter::builder(dsn).outbox("backstop.db").build().unwrap();
/// let stats = exporter.handle();
/// let backstop = backstop_core::init(Options::new().sink(exporter)).unwrap();
/// # drop((backstop, stats));
/// ```
pub struct SentryExporter {
    shared: Arc<Shared>,
    shutdown_timeout: Duration,
}

impl std::fmt::Debug for SentryExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentryExporter")
            .field("queue", &self.shared.queue)
            .finish_non_exhaustive()
    }
}

impl SentryExporter {
    /// Starts building an exporter for `dsn`.
    pub fn builder(dsn: Dsn) -> ExporterBuilder {
        ExporterBuilder {
            dsn,
            outbox: None,
            limits: None,
            timing: Timing {
                request_timeout: Duration::from_secs(30),
                min_backoff: Duration::from_secs(1),
                max_backoff: Duration::from_secs(300),
                report_interval: Duration::from_secs(30),
                connections: 4,
            },
            shutdown_timeout: Duration::from_secs(2),
        }
    }

    /// A handle for stats and flushing, valid after the exporter moved into the
    /// pipeline.
    pub fn handle(&self) -> ExportHandle {
        ExportHandle {
            shared: self.shared.clone(),
        }
    }
}

impl Sink for SentryExporter {
    fn name(&self) -> &str {
        "sentry"
    }

    fn consume(&mut self, batch: &[Record]) -> Result<(), SinkError> {
        let mut items = Vec::with_capacity(batch.len());
        for record in batch {
            match Item::from_record(record) {
                Ok(item) => items.push(item),
                Err(error) => {
                    tracing::warn!(target: "backstop", "not exported: {error}");
                    let (kind, spans) = match record {
                        Record::Event(_) => (Kind::Event, 0),
                        Record::Transaction(t) => (Kind::Transaction, t.spans.len() as u64),
                    };
                    self.shared.outcomes.dropped(Reason::SendError, kind, spans);
                }
            }
        }
        let evicted = self.shared.queue.push(items)?;
        for old in evicted {
            if let Some(kind) = Kind::from_item_type(&old.kind) {
                self.shared
                    .outcomes
                    .dropped(Reason::QueueOverflow, kind, old.spans);
            }
        }
        self.shared.notify();
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        // The outbox is durable the moment `consume` returns; an in-memory queue is
        // given until the shutdown timeout to be delivered.
        if !self.shared.queue.is_durable() {
            self.shared.wait_idle(self.shutdown_timeout, false);
        }
        Ok(())
    }
}

impl Drop for SentryExporter {
    fn drop(&mut self) {
        self.shared.close(Instant::now() + self.shutdown_timeout);
    }
}

/// What the application keeps of an exporter: its stats, and a way to wait for
/// delivery.
#[derive(Clone)]
pub struct ExportHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ExportHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportHandle").finish_non_exhaustive()
    }
}

impl ExportHandle {
    /// What was sent, retried, dropped (by reason and category) and is still queued.
    pub fn stats(&self) -> ExportStats {
        self.shared.outcomes.snapshot(self.shared.queue.len().items)
    }

    /// Waits until nothing is queued, for at most `timeout`; returns whether that
    /// happened.
    pub fn wait_delivered(&self, timeout: Duration) -> bool {
        self.shared.wait_idle(timeout, true)
    }

    /// Reports the drops of `client`'s pipeline (queue full, `before_send`, sampling,
    /// spans over the limit) in client reports too.
    pub fn attach(&self, client: &Client) {
        self.shared.attach(client.clone());
    }
}
