//! The pipeline: a bounded queue from request handling to one worker thread, which
//! processes each record and hands it to every [`Sink`].
//!
//! Request handling only ever does a non-blocking `try_send`; a full queue drops the
//! record and counts it. The worker drains the queue in batches, so a sink such as the
//! SQLite store writes one transaction per batch.

pub(crate) mod console;
pub(crate) mod log_every;
pub(crate) mod process;
pub(crate) mod reuse;
pub(crate) mod scrub;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::pipeline::process::Processor;
use crate::protocol::Event;
// Declared where they are made; the submodules name them through here.
use crate::scope::pending::{LATE_SPAN_GRACE, PendingTransaction, TraceLink, TxRequest};
use crate::sink::{Record, Sink, TransactionSummary};

/// Which kind of record, for the counters.
fn kind_of(record: &Record) -> Kind {
    match record {
        Record::Event(_) => Kind::Event,
        Record::Transaction(_) => Kind::Transaction,
    }
}

// ---------------------------------------------------------------------------------------
// Counters

#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Event = 0,
    Transaction = 1,
}

/// Why a record was dropped.
#[derive(Clone, Copy)]
pub(crate) enum DropReason {
    QueueFull,
    Sampled,
    Ignored,
    BeforeSend,
    Panicked,
    SinkFailed,
    ShutDown,
    Budget,
}

#[derive(Default)]
struct KindCounters {
    captured: AtomicU64,
    sent: AtomicU64,
    dropped: [AtomicU64; 8],
}

/// Process-wide counters for one client. Every drop lands here.
#[derive(Default)]
pub(crate) struct Counters {
    kinds: [KindCounters; 2],
    breadcrumbs_dropped: AtomicU64,
    spans_dropped: AtomicU64,
    callback_panics: AtomicU64,
}

impl Counters {
    pub(crate) fn captured(&self, kind: Kind) {
        self.kinds[kind as usize]
            .captured
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dropped(&self, kind: Kind, why: DropReason, n: u64) {
        self.kinds[kind as usize].dropped[why as usize].fetch_add(n, Ordering::Relaxed);
    }

    fn sent(&self, kind: Kind, n: u64) {
        self.kinds[kind as usize]
            .sent
            .fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn breadcrumb_dropped(&self) {
        self.breadcrumbs_dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn spans_dropped(&self, n: u64) {
        self.spans_dropped.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn callback_panicked(&self) {
        self.callback_panics.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, queued: usize) -> Stats {
        let kind = |k: &KindCounters| {
            let d = |why: DropReason| k.dropped[why as usize].load(Ordering::Relaxed);
            KindStats {
                captured: k.captured.load(Ordering::Relaxed),
                sent: k.sent.load(Ordering::Relaxed),
                dropped_queue_full: d(DropReason::QueueFull),
                dropped_sampled: d(DropReason::Sampled),
                dropped_ignored: d(DropReason::Ignored),
                dropped_before_send: d(DropReason::BeforeSend),
                dropped_panicked: d(DropReason::Panicked),
                dropped_sink_failed: d(DropReason::SinkFailed),
                dropped_shutdown: d(DropReason::ShutDown),
                dropped_budget: d(DropReason::Budget),
            }
        };
        Stats {
            events: kind(&self.kinds[0]),
            transactions: kind(&self.kinds[1]),
            breadcrumbs_dropped: self.breadcrumbs_dropped.load(Ordering::Relaxed),
            spans_dropped: self.spans_dropped.load(Ordering::Relaxed),
            callback_panics: self.callback_panics.load(Ordering::Relaxed),
            queued,
        }
    }
}

/// A snapshot of what the pipeline did, from [`Client::stats`](crate::Client::stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Error and message events.
    pub events: KindStats,
    /// Transactions.
    pub transactions: KindStats,
    /// Breadcrumbs pushed out of a full scope, or dropped by `before_breadcrumb`.
    pub breadcrumbs_dropped: u64,
    /// Spans over a transaction's limit.
    pub spans_dropped: u64,
    /// User callbacks (`before_*`, samplers) that panicked.
    pub callback_panics: u64,
    /// Records waiting in the queue right now.
    pub queued: usize,
}

/// Counts for one kind of record. `captured` = `sent` + every `dropped_*` + those still
/// in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct KindStats {
    /// Records the application produced.
    pub captured: u64,
    /// Records every sink took.
    pub sent: u64,
    /// Dropped because the queue was full.
    pub dropped_queue_full: u64,
    /// Dropped by `sample_rate` (transactions are sampled before they are captured, so
    /// this stays 0 for them).
    pub dropped_sampled: u64,
    /// Dropped by `ignore_errors` / `ignore_status`.
    pub dropped_ignored: u64,
    /// Dropped by `before_send` returning `None`.
    pub dropped_before_send: u64,
    /// Dropped because processing or `before_send` panicked.
    pub dropped_panicked: u64,
    /// Lost by at least one sink that failed.
    pub dropped_sink_failed: u64,
    /// Captured after shutdown.
    pub dropped_shutdown: u64,
    /// Transactions no sink wanted (see [`Sink::wants_transaction`]): the SQLite
    /// store's keep budget was full, and no other sink takes every transaction.
    pub dropped_budget: u64,
}

impl KindStats {
    /// All drops, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full
            + self.dropped_sampled
            + self.dropped_ignored
            + self.dropped_before_send
            + self.dropped_panicked
            + self.dropped_sink_failed
            + self.dropped_shutdown
            + self.dropped_budget
    }
}

// ---------------------------------------------------------------------------------------
// Queue messages and the worker

/// An event as it travels to the worker: the backtrace is still unresolved, because
/// symbolising is slow and belongs off the request path.
pub(crate) struct PendingEvent {
    pub(crate) event: Event,
    pub(crate) backtrace: Option<backtrace::Backtrace>,
    /// The request's place in its trace; the worker turns it into the `trace` context.
    pub(crate) trace: Option<TraceLink>,
}

pub(crate) enum Message {
    Event(Box<PendingEvent>),
    /// A batch of transactions from one thread (see [`crate::pipeline::reuse::handoff`]).
    Transactions(crate::pipeline::reuse::handoff::Batch),
    /// A span that closed after its transaction was sent (see [`LATE_SPAN_GRACE`]).
    LateSpan(Box<(crate::protocol::EventId, crate::scope::spans::PendingSpan)>),
    /// Process everything before this, flush the sinks, then answer.
    Flush(Sender<()>),
    /// Flush, drop the sinks, answer, and stop.
    Shutdown(Sender<()>),
}

/// How long the worker sleeps when the queue is empty and nobody woke it.
const TICK: Duration = Duration::from_millis(10);

/// The largest batch handed to sinks at once.
const MAX_BATCH: usize = 512;

struct SinkSlot {
    sink: Box<dyn Sink>,
    /// A sink's failures are logged at most once a minute.
    log: log_every::LogEvery,
}

impl SinkSlot {
    fn report(&mut self, what: &str, error: &dyn std::fmt::Display) {
        let Some(suppressed) = self.log.due() else {
            return;
        };
        tracing::error!(
            target: "backstop",
            sink = self.sink.name(),
            suppressed,
            "sink failed to {what}: {error}"
        );
    }
}

pub(crate) struct Worker {
    rx: Receiver<Message>,
    processor: Processor,
    counters: Arc<Counters>,
    sinks: Vec<SinkSlot>,
    /// Transactions waiting out [`LATE_SPAN_GRACE`], oldest first.
    held: std::collections::VecDeque<(Instant, PendingTransaction)>,
    /// Where batches come from, and their lists go back to.
    reuse: crate::pipeline::reuse::Reuse,
    /// When the open batches were last collected.
    collected: Instant,
    /// What a visit to the open batches found (see [`Worker::collect_open`]).
    collecting: Vec<PendingTransaction>,
    /// The most transactions held at once (the queue's capacity): past it, the oldest
    /// is processed early.
    max_held: usize,
    max_spans: usize,
    /// Route metrics, gathered from the request threads.
    metrics: Option<crate::metrics::Merger>,
}

impl Worker {
    pub(crate) fn new(
        rx: Receiver<Message>,
        sinks: Vec<Box<dyn Sink>>,
        processor: Processor,
        counters: Arc<Counters>,
        max_held: usize,
        max_spans: usize,
        reuse: crate::pipeline::reuse::Reuse,
    ) -> Self {
        let sinks = sinks
            .into_iter()
            .map(|sink| SinkSlot {
                sink,
                log: log_every::LogEvery::minute(),
            })
            .collect();
        Worker {
            rx,
            processor,
            counters,
            sinks,
            held: std::collections::VecDeque::new(),
            max_held: max_held.max(1),
            max_spans,
            reuse,
            collected: Instant::now(),
            collecting: Vec::new(),
            metrics: None,
        }
    }

    /// Gathers the request threads' route metrics and hands them to the sinks.
    pub(crate) fn with_metrics(mut self, merger: crate::metrics::Merger) -> Self {
        self.metrics = Some(merger);
        self
    }

    /// Hands the route metrics gathered so far to the sinks: the minutes that have
    /// ended, or with `all` (before a flush) every one.
    fn deliver_metrics(&mut self, all: bool) {
        let Some(merger) = &mut self.metrics else {
            return;
        };
        if !all && !merger.due() {
            return;
        }
        let minutes = merger.merge(all);
        if minutes.is_empty() {
            return;
        }
        for slot in &mut self.sinks {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                slot.sink.consume_metrics(&minutes)
            }));
            match result {
                Ok(Ok(())) => {}
                Ok(Err(error)) => slot.report("write route metrics", &error),
                Err(panic) => slot.report(
                    "write route metrics (it panicked)",
                    &crate::capture::panic::payload_message(&*panic),
                ),
            }
        }
    }

    /// The next message: `Ok(None)` when a tick passed with none (time to release held
    /// transactions), `Err(())` once every sender is gone. Between messages the worker
    /// parks for at most a tick: senders wake it only for flushes, shutdown, or a
    /// filling queue, so capturing never pays for a wake-up.
    fn next(&self) -> Result<Option<Message>, ()> {
        match self.rx.try_recv() {
            Ok(message) => Ok(Some(message)),
            Err(crossbeam_channel::TryRecvError::Disconnected) => Err(()),
            Err(crossbeam_channel::TryRecvError::Empty) => {
                std::thread::park_timeout(TICK);
                Ok(None)
            }
        }
    }

    pub(crate) fn run(mut self) {
        let mut batch: Vec<Record> = Vec::with_capacity(64);
        loop {
            let Ok(first) = self.next() else { break };
            let mut control = None;
            let mut next = first;
            while let Some(message) = next.take() {
                match message {
                    Message::Flush(_) | Message::Shutdown(_) => {
                        control = Some(message);
                        break;
                    }
                    Message::Event(pending) => {
                        batch.extend(self.processor.event(*pending));
                    }
                    Message::Transactions(mut list) => {
                        list.take_each(|transaction| self.hold(transaction, &mut batch));
                        self.reuse.give_back(list);
                    }
                    Message::LateSpan(late) => self.join_late(*late, &mut batch),
                }
                if batch.len() < MAX_BATCH {
                    next = self.rx.try_recv().ok();
                }
            }
            // A flush or shutdown processes everything held, open batches included;
            // otherwise, what has waited long enough, collecting the open batches
            // every tick.
            if control.is_some() || self.collected.elapsed() >= TICK {
                self.collect_open(&mut batch);
            }
            self.release(control.is_some(), &mut batch);
            if !batch.is_empty() {
                self.deliver(&batch);
                batch.clear();
            }
            self.deliver_metrics(control.is_some());
            match control {
                Some(Message::Flush(ack)) => {
                    self.flush_sinks();
                    let _ = ack.send(());
                }
                Some(Message::Shutdown(ack)) => {
                    self.flush_sinks();
                    self.sinks.clear();
                    let _ = ack.send(());
                    return;
                }
                _ => {}
            }
        }
        // Every sender is gone: the process is ending without a shutdown call.
        self.collect_open(&mut batch);
        self.release(true, &mut batch);
        if !batch.is_empty() {
            self.deliver(&batch);
        }
        self.deliver_metrics(true);
        self.flush_sinks();
    }

    /// Holds a transaction for late spans, or processes it now when none can come.
    fn hold(&mut self, transaction: PendingTransaction, batch: &mut Vec<Record>) {
        if !transaction.late_spans {
            self.process(transaction, batch);
            return;
        }
        if self.held.len() >= self.max_held
            && let Some((_, oldest)) = self.held.pop_front()
        {
            self.process(oldest, batch);
        }
        self.held.push_back((Instant::now(), transaction));
    }

    /// Takes in the batches the request threads have not sent yet.
    fn collect_open(&mut self, batch: &mut Vec<Record>) {
        self.collected = Instant::now();
        // The list is kept between visits: growing a new one here would make glibc
        // consolidate the worker's heap every tick.
        let mut collected = std::mem::take(&mut self.collecting);
        self.reuse
            .collect_open(|transaction| collected.push(transaction));
        for transaction in collected.drain(..) {
            self.hold(transaction, batch);
        }
        self.collecting = collected;
    }

    fn process(&mut self, transaction: PendingTransaction, batch: &mut Vec<Record>) {
        if !self.sinks.is_empty() && !self.wanted(&transaction) {
            self.counters
                .dropped(Kind::Transaction, DropReason::Budget, 1);
            self.processor.discard(transaction);
            return;
        }
        batch.extend(self.processor.transaction(transaction));
    }

    /// Whether any sink wants `transaction` (every sink is asked: the store keeps
    /// count of what it was offered).
    fn wanted(&mut self, transaction: &PendingTransaction) -> bool {
        let summary = self.processor.summary(transaction);
        let mut wanted = false;
        for slot in &mut self.sinks {
            let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                slot.sink.wants_transaction(&summary)
            }));
            // A sink that panics here is given the transaction, as before it asked.
            wanted |= answer.unwrap_or(true);
        }
        wanted
    }

    /// Adds a late span to its held transaction; one already processed (or unknown)
    /// counts it as dropped.
    fn join_late(
        &mut self,
        (id, span): (crate::protocol::EventId, crate::scope::spans::PendingSpan),
        batch: &mut Vec<Record>,
    ) {
        if !self.holds(id) {
            // Its transaction may still sit in its thread's open batch.
            self.collect_open(batch);
        }
        // Late spans arrive right after their transaction: search from the newest.
        let held = self
            .held
            .iter_mut()
            .rev()
            .map(|(_, t)| t)
            .find(|t| t.event_id == id);
        match held {
            Some(transaction) if transaction.spans.len() < self.max_spans => {
                transaction.spans.push(span);
            }
            Some(transaction) => {
                transaction.spans_dropped += 1;
                self.counters.spans_dropped(1);
            }
            None => self.counters.spans_dropped(1),
        }
    }

    fn holds(&self, id: crate::protocol::EventId) -> bool {
        self.held.iter().rev().any(|(_, t)| t.event_id == id)
    }

    fn release(&mut self, all: bool, batch: &mut Vec<Record>) {
        while let Some((at, _)) = self.held.front() {
            if !all && at.elapsed() < LATE_SPAN_GRACE {
                break;
            }
            if let Some((_, pending)) = self.held.pop_front() {
                self.process(pending, batch);
            }
        }
    }

    fn deliver(&mut self, batch: &[Record]) {
        let mut failed = false;
        for slot in &mut self.sinks {
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| slot.sink.consume(batch)));
            match result {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    failed = true;
                    slot.report("write", &error);
                }
                Err(panic) => {
                    failed = true;
                    slot.report(
                        "write (it panicked)",
                        &crate::capture::panic::payload_message(&*panic),
                    );
                }
            }
        }
        let (mut events, mut transactions) = (0, 0);
        for record in batch {
            match kind_of(record) {
                Kind::Event => events += 1,
                Kind::Transaction => transactions += 1,
            }
        }
        for (kind, n) in [(Kind::Event, events), (Kind::Transaction, transactions)] {
            if n == 0 {
                continue;
            }
            if failed {
                self.counters.dropped(kind, DropReason::SinkFailed, n);
            } else {
                self.counters.sent(kind, n);
            }
        }
    }

    fn flush_sinks(&mut self) {
        for slot in &mut self.sinks {
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| slot.sink.flush()));
            match result {
                Ok(Ok(())) => {}
                Ok(Err(error)) => slot.report("flush", &error),
                Err(panic) => slot.report(
                    "flush (it panicked)",
                    &crate::capture::panic::payload_message(&*panic),
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::scope::pending::TxName;

    #[test]
    fn only_transactions_that_may_get_late_spans_wait_for_them() {
        use std::sync::Arc;

        let settings = Arc::new(crate::Options::new().validate().unwrap().settings);
        let counters = Arc::new(super::Counters::default());
        let reuse = crate::pipeline::reuse::Reuse::new(16);
        let processor =
            crate::pipeline::process::Processor::new(settings, counters.clone(), reuse.clone());
        let (_tx, rx) = crossbeam_channel::bounded(1);
        let mut worker = super::Worker::new(rx, Vec::new(), processor, counters, 16, 100, reuse);
        let mut records = Vec::new();
        worker.hold(
            crate::pipeline::reuse::handoff::tests::transaction(),
            &mut records,
        );
        assert_eq!(records.len(), 1, "processed on arrival");
        assert!(worker.held.is_empty());
        let mut shared = crate::pipeline::reuse::handoff::tests::transaction();
        shared.late_spans = true;
        worker.hold(shared, &mut records);
        assert_eq!(records.len(), 1, "held for late spans");
        assert_eq!(worker.held.len(), 1);
    }

    #[test]
    fn transaction_names_short_and_long_come_back_whole() {
        for name in ["GET /users/{id}", "", &"x".repeat(80), &"é".repeat(200)] {
            assert_eq!(TxName::new(name).as_str(), name);
            assert_eq!(TxName::new(name).into_string(), name);
        }
        assert!(matches!(TxName::new(&"x".repeat(81)), TxName::Heap(_)));
    }
}
