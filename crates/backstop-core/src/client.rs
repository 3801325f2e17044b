//! The running client: [`init`] starts it, [`BackstopGuard`] owns it, and
//! [`Client`] is the cheap handle the adapters keep.

use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};

use crate::options::{Dsn, InitError, Options, SamplingContext, Settings};
use crate::pipeline::process::Processor;
use crate::pipeline::{Counters, DropReason, Kind, Message, PendingEvent, Stats, Worker};
use crate::protocol::{Event, EventId};
use crate::scope::RequestScope;
use crate::scope::ScopeBuilder;
use crate::scope::outlet::Outlet;
use crate::scope::pending::{PendingTransaction, TraceLink, TxName};
use crate::scope::spans::PendingSpan;

/// A cheap, clonable handle to a running Backstop client. Adapters and scopes keep one;
/// it stays valid after the [`BackstopGuard`] is dropped, but records captured after
/// shutdown are only counted.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<ClientInner>,
}

pub(crate) struct ClientInner {
    pub(crate) settings: Arc<Settings>,
    pub(crate) counters: Arc<Counters>,
    tx: Sender<Message>,
    /// The worker sleeps between ticks; a sender wakes it early only when the queue
    /// is filling up, so a capture costs no syscall.
    worker: std::thread::Thread,
    wake_at: usize,
    closed: AtomicBool,
    /// Memory that goes round between the request threads and the worker.
    pub(crate) reuse: crate::pipeline::reuse::Reuse,
    /// Every request thread's route metrics, which the worker merges.
    pub(crate) metrics: Arc<crate::metrics::Threads>,
    /// What the sinks lent at start ([`Sink::shared`](crate::Sink::shared)).
    /// Asserted unwind-safe so the client stays so: they are handles the client only
    /// lends out, never uses.
    shared: std::panic::AssertUnwindSafe<Vec<Arc<dyn std::any::Any + Send + Sync>>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("environment", &self.inner.settings.environment)
            .field("release", &self.inner.settings.release)
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The client registered by the latest [`init`]: what captures outside any request use.
static GLOBAL: RwLock<Option<Client>> = RwLock::new(None);

/// Starts Backstop: checks the options, starts the worker thread, installs the panic
/// hook, and registers the client for captures made outside a request.
///
/// ```
/// let backstop = backstop_core::init(backstop_core::Options::new().release("doc@1")).unwrap();
/// backstop_core::capture_message("started", backstop_core::Level::Info);
/// assert!(backstop.flush(std::time::Duration::from_secs(2)));
/// ```
///
/// Keep the returned guard alive for the life of the service: dropping it flushes (for
/// at most the shutdown timeout) and stops the worker.
pub fn init(options: Options) -> Result<BackstopGuard, InitError> {
    let backstop = Client::start(options)?;
    if let Ok(mut global) = GLOBAL.write() {
        *global = Some(backstop.client.clone());
    }
    Ok(backstop)
}

impl Client {
    /// Starts a client without registering it globally: captures made outside a
    /// request don't reach it. [`init`] registers it; tests reach this through
    /// `test::start`, to stay out of each other's way.
    pub(crate) fn start(options: Options) -> Result<BackstopGuard, InitError> {
        let validated = options.validate()?;
        // The spans' clock calibrates on its first read (10 to 20 ms, at most 200):
        // here, not in the first request.
        let _ = crate::scope::spans::now();
        let settings = Arc::new(validated.settings);
        let counters = Arc::new(Counters::default());
        let mut sinks = validated.sinks;
        if validated.console.unwrap_or(sinks.is_empty()) {
            sinks.push(Box::new(crate::pipeline::console::ConsoleSink::new()));
        }
        let shared =
            std::panic::AssertUnwindSafe(sinks.iter().filter_map(|sink| sink.shared()).collect());
        let (tx, rx) = crossbeam_channel::bounded(validated.queue_capacity);
        let reuse = crate::pipeline::reuse::Reuse::new(validated.queue_capacity);
        let metrics = Arc::new(crate::metrics::Threads::default());
        let worker = Worker::new(
            rx,
            sinks,
            Processor::new(settings.clone(), counters.clone(), reuse.clone()),
            counters.clone(),
            validated.queue_capacity,
            settings.max_spans,
            reuse.clone(),
        )
        .with_metrics(crate::metrics::Merger::new(
            metrics.clone(),
            settings.environment.clone(),
            settings.release.clone(),
        ));
        let handle = std::thread::Builder::new()
            .name("backstop-worker".into())
            .spawn(move || {
                crate::capture::panic::mark_worker_thread();
                worker.run();
            })
            .map_err(InitError::Worker)?;
        let worker = handle.thread().clone();
        if validated.install_panic_hook {
            crate::capture::panic::install_hook(route_panic);
        }
        Ok(BackstopGuard {
            client: Client {
                inner: Arc::new(ClientInner {
                    settings,
                    counters,
                    tx,
                    worker,
                    wake_at: (validated.queue_capacity / 4).max(1),
                    closed: AtomicBool::new(false),
                    reuse,
                    metrics,
                    shared,
                }),
            },
            worker: Some(handle),
        })
    }

    /// What one of the sinks lent at start, by type (the SQLite store lends its
    /// `StoreReader`).
    pub fn shared<T: std::any::Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.inner
            .shared
            .iter()
            .find_map(|lent| lent.clone().downcast::<T>().ok())
    }

    /// The client registered by the latest [`init`], if any.
    pub fn global() -> Option<Client> {
        GLOBAL.try_read().ok().and_then(|g| g.clone())
    }

    /// The client of the current request, else the global one.
    pub fn current() -> Option<Client> {
        crate::scope::RequestScope::current()
            .map(|s| s.client())
            .or_else(Client::global)
    }

    /// Counters: captured, sent and dropped, per kind.
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot(self.inner.tx.len())
    }

    /// Waits until everything captured so far has been processed and every sink has
    /// flushed, for at most `timeout`. Returns whether that happened in time. Never
    /// waits longer than `timeout`, even with a full queue or a stuck sink.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (ack_tx, ack_rx) = crossbeam_channel::bounded(1);
        if self
            .inner
            .tx
            .send_deadline(Message::Flush(ack_tx), deadline)
            .is_err()
        {
            return false;
        }
        self.inner.worker.unpark();
        ack_rx.recv_deadline(deadline).is_ok()
    }

    /// The environment events are tagged with.
    pub fn environment(&self) -> &str {
        &self.inner.settings.environment
    }

    /// The release, if one was set.
    pub fn release(&self) -> Option<&str> {
        self.inner.settings.release.as_deref()
    }

    /// The parsed DSN, if one was set.
    pub fn dsn(&self) -> Option<&Dsn> {
        self.inner.settings.dsn.as_ref()
    }

    /// Whether personal data may be collected.
    pub fn send_default_pii(&self) -> bool {
        self.inner.settings.send_default_pii
    }

    /// Whether a traces sampler is set (adapters then hand it the request headers).
    pub fn has_traces_sampler(&self) -> bool {
        self.inner.has_traces_sampler()
    }

    /// Whether error responses with this status are never recorded (`ignore_status`).
    pub fn is_status_ignored(&self, status: u16) -> bool {
        self.inner.settings.ignore_statuses.contains(&status)
    }

    /// Whether a header's value must be filtered before it is recorded. Adapters use it
    /// when they copy request headers, so the rule lives in one place.
    pub fn is_secret_header(&self, name: &str) -> bool {
        !self.inner.settings.send_default_pii && self.inner.settings.scrub.is_secret_header(name)
    }

    /// Decides whether a transaction is kept: the caller's decision if it sent one,
    /// else the sampler, else `traces_sample_rate`. A sampler that panics keeps nothing.
    pub fn sample_transaction(&self, ctx: &SamplingContext<'_>) -> bool {
        self.inner.sample_transaction(ctx)
    }

    /// Sends a fully built event (no scope is applied). Returns its id at once.
    pub fn capture_event(&self, event: Event) -> EventId {
        self.inner.send_event(event, None, None)
    }

    pub(crate) fn send_event(
        &self,
        event: Event,
        backtrace: Option<backtrace::Backtrace>,
        trace: Option<TraceLink>,
    ) -> EventId {
        self.inner.send_event(event, backtrace, trace)
    }

    /// The scope's view of this client.
    pub(crate) fn outlet(&self) -> Arc<dyn Outlet> {
        self.inner.clone()
    }

    fn ptr_eq(&self, other: &Client) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl ClientInner {
    /// Sends `message`, which holds `n` records of `kind`.
    fn enqueue(&self, kind: Kind, n: u64, message: Message) {
        let counters = &self.counters;
        if self.closed.load(Ordering::Relaxed) {
            counters.dropped(kind, DropReason::ShutDown, n);
            return;
        }
        match self.tx.try_send(message) {
            Ok(()) => {
                // The queue's length reads the worker's end of it, a cache line the
                // worker keeps writing: in a large queue, look only every few sends. The
                // worker wakes on its own every tick anyway; this wakes it early for a
                // filling queue.
                if (self.wake_at <= 4 * CHECK_QUEUE_EVERY as usize || should_check_queue())
                    && self.tx.len() >= self.wake_at
                {
                    self.worker.unpark();
                }
            }
            Err(TrySendError::Full(_)) => counters.dropped(kind, DropReason::QueueFull, n),
            Err(TrySendError::Disconnected(_)) => counters.dropped(kind, DropReason::ShutDown, n),
        }
    }
}

/// The client as its scopes see it.
impl Outlet for ClientInner {
    fn settings(&self) -> &Settings {
        &self.settings
    }

    fn metrics(&self) -> &Arc<crate::metrics::Threads> {
        &self.metrics
    }

    fn breadcrumb_dropped(&self) {
        self.counters.breadcrumb_dropped();
    }

    fn callback_panicked(&self) {
        self.counters.callback_panicked();
    }

    fn spans_dropped(&self, n: u64) {
        self.counters.spans_dropped(n);
    }

    fn has_traces_sampler(&self) -> bool {
        self.settings.traces_sampler.is_some()
    }

    /// [`sample_transaction`](Outlet::sample_transaction) for a client with no
    /// `traces_sampler` and a request with no parent decision: the rate alone.
    fn sample_by_rate(&self) -> bool {
        roll(self.settings.traces_sample_rate)
    }

    fn sample_transaction(&self, ctx: &SamplingContext<'_>) -> bool {
        if let Some(sampled) = ctx.parent_sampled {
            return sampled;
        }
        let settings = &self.settings;
        let rate = match &settings.traces_sampler {
            Some(sampler) => {
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sampler(ctx))) {
                    Ok(rate) => f64::from(rate),
                    Err(_) => {
                        self.counters.callback_panicked();
                        0.0
                    }
                }
            }
            None => settings.traces_sample_rate,
        };
        roll(rate)
    }

    fn span_list(&self) -> Vec<PendingSpan> {
        self.reuse.span_list()
    }

    fn free_retired(&self) {
        self.reuse.free_retired();
    }

    fn send_event(
        &self,
        event: Event,
        backtrace: Option<backtrace::Backtrace>,
        trace: Option<TraceLink>,
    ) -> EventId {
        let id = event.event_id;
        let counters = &self.counters;
        counters.captured(Kind::Event);
        if !roll(self.settings.sample_rate) {
            counters.dropped(Kind::Event, DropReason::Sampled, 1);
            return id;
        }
        self.enqueue(
            Kind::Event,
            1,
            Message::Event(Box::new(PendingEvent {
                event,
                backtrace,
                trace,
            })),
        );
        id
    }

    #[inline]
    fn send_transaction(
        &self,
        transaction: PendingTransaction,
        facts: Option<crate::http::RequestFacts<'_>>,
    ) {
        let counters = &self.counters;
        counters.captured(Kind::Transaction);
        if self.closed.load(Ordering::Relaxed) {
            counters.dropped(Kind::Transaction, DropReason::ShutDown, 1);
            return;
        }
        if let Some(full) = self.reuse.hand_off(transaction, facts) {
            let n = full.len() as u64;
            self.enqueue(Kind::Transaction, n, Message::Transactions(full));
        }
    }

    /// Hands the worker a span that closed after its transaction was sent.
    fn send_late_span(&self, transaction: EventId, span: PendingSpan) {
        let counters = &self.counters;
        if self.closed.load(Ordering::Relaxed)
            || self
                .tx
                .try_send(Message::LateSpan(Box::new((transaction, span))))
                .is_err()
        {
            counters.spans_dropped(1);
        }
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

impl RequestScope {
    /// Starts building a scope named `name` (the transaction name).
    #[inline]
    pub fn builder<'a>(client: &'a Client, name: impl AsRef<str>) -> ScopeBuilder<'a> {
        Self::named(client.outlet(), TxName::new(name.as_ref()))
    }

    /// Starts building the scope of an HTTP request, named `METHOD /route/{param}`, or
    /// `METHOD <unmatched>` when no route matched (see
    /// [`transaction_name`](crate::http::transaction_name)).
    #[inline]
    pub fn http_builder<'a>(
        client: &'a Client,
        method: &str,
        route: Option<&str>,
    ) -> ScopeBuilder<'a> {
        let pieces = crate::http::transaction_name_pieces(method, route);
        Self::named(client.outlet(), TxName::from_pieces(&pieces))
    }

    /// The client this scope reports to.
    pub fn client(&self) -> Client {
        match self.outlet().clone().into_any().downcast::<ClientInner>() {
            Ok(inner) => Client { inner },
            Err(_) => unreachable!("a scope reports to a client"),
        }
    }
}

/// Where the panic hook sends what it saw: inside a request, to the request's scope,
/// which records it with the request's context once the adapter catches the panic;
/// outside any request, straight to the global client.
fn route_panic(record: crate::capture::panic::PanicRecord) {
    if crate::scope::has_current() {
        crate::capture::panic::leave_for_scope(record);
    } else if let Some(client) = Client::global() {
        let (event, backtrace) = crate::capture::panic::panic_event(record);
        client.send_event(event, backtrace, None);
    }
}

/// True on one send in [`CHECK_QUEUE_EVERY`] on this thread.
fn should_check_queue() -> bool {
    thread_local! {
        static SENDS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }
    SENDS.with(|sends| {
        let n = sends.get().wrapping_add(1);
        sends.set(n);
        n % CHECK_QUEUE_EVERY == 0
    })
}

/// How often a sending thread looks at the queue's length (see [`ClientInner::enqueue`]).
/// Far below the wake-up threshold (a quarter of the queue), so a filling queue still
/// wakes the worker long before it is full.
const CHECK_QUEUE_EVERY: u32 = 16;

fn roll(rate: f64) -> bool {
    if rate >= 1.0 {
        true
    } else if rate > 0.0 {
        fastrand::f64() < rate
    } else {
        false
    }
}

/// The guard [`init`] returns. It derefs to the [`Client`]. Dropping it flushes (for at
/// most the shutdown timeout) and stops the worker.
pub struct BackstopGuard {
    client: Client,
    worker: Option<JoinHandle<()>>,
}

impl fmt::Debug for BackstopGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackstopGuard")
            .field("client", &self.client)
            .finish()
    }
}

impl Deref for BackstopGuard {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl BackstopGuard {
    /// A handle to the client, for layers and middleware.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Flushes and stops the worker now, waiting at most `timeout` in all. Returns
    /// whether everything was delivered in time. Dropping the guard does the same with
    /// the configured shutdown timeout.
    pub fn shutdown(mut self, timeout: Duration) -> bool {
        self.shutdown_within(timeout)
    }

    fn shutdown_within(&mut self, timeout: Duration) -> bool {
        let Some(worker) = self.worker.take() else {
            return true;
        };
        let deadline = Instant::now() + timeout;
        let inner = &self.client.inner;
        inner.closed.store(true, Ordering::Relaxed);
        if let Ok(mut global) = GLOBAL.write()
            && global.as_ref().is_some_and(|g| g.ptr_eq(&self.client))
        {
            *global = None;
        }
        let (ack_tx, ack_rx) = crossbeam_channel::bounded(1);
        let sent = inner
            .tx
            .send_deadline(Message::Shutdown(ack_tx), deadline)
            .is_ok();
        inner.worker.unpark();
        let done = sent && ack_rx.recv_deadline(deadline).is_ok();
        if done {
            // The worker has answered and is returning: joining is immediate.
            let _ = worker.join();
        }
        // Otherwise the worker is left to finish on its own: never wait past the timeout.
        done
    }
}

impl Drop for BackstopGuard {
    fn drop(&mut self) {
        let timeout = self.client.inner.settings.shutdown_timeout;
        self.shutdown_within(timeout);
    }
}
