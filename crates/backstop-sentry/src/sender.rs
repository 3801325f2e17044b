//! The sender thread: takes the oldest items from the queue, sends each in its own
//! envelope (it and its lanes, one keep-alive connection each, several in flight), and
//! applies what the server answered (rate limits, retries, drops). Request threads and
//! the pipeline's worker never wait on it.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant, SystemTime};

use backstop_core::{Client, Dsn};

use backstop_store::OutboxItem;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

use crate::envelope::{self, Gzip, Kind};
use crate::queue::Queue;
use crate::ratelimit::RateLimits;
use crate::report::{Outcomes, Reason};

/// Items taken from the queue at once.
const BATCH: usize = 64;

/// How often, at most, the outbox's write-ahead log is checkpointed (copied back into
/// the database), which pushes leave to the sender's checkpoint thread.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Delivery settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) request_timeout: Duration,
    pub(crate) min_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) report_interval: Duration,
    /// How many envelopes may be in flight at once, each on its own connection.
    pub(crate) connections: usize,
}

/// What the exporter and the sender thread share.
pub(crate) struct Shared {
    pub(crate) queue: Queue,
    pub(crate) outcomes: Outcomes,
    signal: Mutex<Signal>,
    wake: Condvar,
    /// Whether the last send failed and the sender waits before the next.
    pub(crate) backing_off: AtomicBool,
    /// The running client, whose pipeline drops are reported too.
    client: Mutex<Option<Client>>,
}

#[derive(Default)]
struct Signal {
    work: bool,
    /// Set when the exporter is dropped: deliver until then, then stop.
    closing: Option<Instant>,
    /// Set by the sender when it has stopped.
    stopped: bool,
    /// Bumped after each batch, so a flush can wait for progress.
    batches: u64,
}

impl Shared {
    pub(crate) fn new(queue: Queue) -> Shared {
        Shared {
            queue,
            outcomes: Outcomes::default(),
            signal: Mutex::new(Signal {
                // Items left from a previous run are delivered at once.
                work: true,
                ..Signal::default()
            }),
            wake: Condvar::new(),
            backing_off: AtomicBool::new(false),
            client: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Signal> {
        self.signal.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn notify(&self) {
        self.lock().work = true;
        self.wake.notify_all();
    }

    pub(crate) fn attach(&self, client: Client) {
        *self.client.lock().unwrap_or_else(PoisonError::into_inner) = Some(client);
    }

    /// Asks the sender to deliver what it can until `deadline`, then stop; waits for it
    /// to stop, at most until `deadline` and a little more.
    pub(crate) fn close(&self, deadline: Instant) -> bool {
        let mut signal = self.lock();
        signal.closing = Some(deadline);
        signal.work = true;
        self.wake.notify_all();
        let give_up = deadline + Duration::from_millis(200);
        while !signal.stopped {
            let now = Instant::now();
            if now >= give_up {
                return false;
            }
            signal = self
                .wake
                .wait_timeout(signal, give_up - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    /// Waits until the queue is empty, for at most `timeout`; with `patient` false,
    /// gives up early while the server is failing (the items wait for it).
    pub(crate) fn wait_idle(&self, timeout: Duration, patient: bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut signal = self.lock();
        loop {
            if self.queue.len().items == 0 {
                return true;
            }
            let now = Instant::now();
            let failing = !patient && self.backing_off.load(Ordering::Relaxed);
            if now >= deadline || signal.stopped || failing {
                return false;
            }
            let seen = signal.batches;
            while signal.batches == seen && !signal.stopped {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                signal = self
                    .wake
                    .wait_timeout(signal, (deadline - now).min(Duration::from_millis(50)))
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                if self.queue.len().items == 0 {
                    return true;
                }
            }
        }
    }
}

/// The HTTP side: one keep-alive agent, rustls with the web PKI roots, and the proxy
/// from `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` (minus `NO_PROXY`).
pub(crate) struct Transport {
    agent: ureq::Agent,
    url: String,
    auth: String,
}

/// ureq resolves the host before every request, even one that goes over a pooled
/// connection, and with a timeout set it starts a thread for each lookup: a tenth of the
/// sender's time in the profile, besides a DNS query per envelope. This keeps each
/// answer for [`RESOLVED_FOR`].
#[derive(Debug, Default)]
struct CachedResolver {
    inner: DefaultResolver,
    last: Mutex<Option<Resolved>>,
}

#[derive(Debug)]
struct Resolved {
    scheme: String,
    authority: String,
    addrs: ResolvedSocketAddrs,
    at: Instant,
}

/// How long a lookup is used: short enough to follow a server that moves.
const RESOLVED_FOR: Duration = Duration::from_secs(30);

impl Resolver for CachedResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let scheme = uri.scheme_str().unwrap_or("");
        let authority = uri.authority().map_or("", |a| a.as_str());
        let lock = || self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(last) = &*lock()
            && last.scheme == scheme
            && last.authority == authority
            && last.at.elapsed() < RESOLVED_FOR
        {
            return Ok(last.addrs.clone());
        }
        let addrs = self.inner.resolve(uri, config, timeout)?;
        *lock() = Some(Resolved {
            scheme: scheme.to_owned(),
            authority: authority.to_owned(),
            addrs: addrs.clone(),
            at: Instant::now(),
        });
        Ok(addrs)
    }
}

/// What the server answered.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) rate_limits: Option<String>,
    pub(crate) retry_after: Option<String>,
}

impl Transport {
    pub(crate) fn new(dsn: &Dsn, timeout: Duration, connections: usize) -> Transport {
        let client = format!("{}/{}", envelope::SDK_NAME, envelope::SDK_VERSION);
        let mut auth = format!(
            "Sentry sentry_version=7, sentry_client={client}, sentry_key={}",
            dsn.public_key()
        );
        if let Some(secret) = dsn.secret_key() {
            auth.push_str(", sentry_secret=");
            auth.push_str(secret);
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            // Both bounds: ureq keeps at most 10 idle connections in all by default, so
            // 16 lanes would open a new connection for every few envelopes.
            .max_idle_connections(connections.max(1))
            .max_idle_connections_per_host(connections.max(1))
            .user_agent(client.as_str())
            .build();
        let agent = ureq::Agent::with_parts(
            config,
            ureq::unversioned::transport::DefaultConnector::default(),
            CachedResolver::default(),
        );
        Transport {
            agent,
            url: dsn.envelope_url(),
            auth,
        }
    }

    /// Sends one envelope, compressed, with a compressor of its own: for the odd send
    /// (a replay), where no [`Scratch`] is kept.
    pub(crate) fn send(&self, envelope: &[u8]) -> Result<Answer, ureq::Error> {
        let mut scratch = Scratch::new();
        self.post(envelope, &mut scratch.gzip, &mut scratch.body)
    }

    /// Writes and sends one envelope, reusing `scratch`'s compressor and buffers.
    fn send_item(
        &self,
        scratch: &mut Scratch,
        item: Option<(Kind, &str, &[u8])>,
        report: Option<&[u8]>,
    ) -> Result<Answer, ureq::Error> {
        let Scratch {
            gzip,
            envelope,
            body,
        } = scratch;
        envelope::write_into(envelope, item, report, SystemTime::now());
        let answer = self.post(envelope, gzip, body);
        scratch.trim();
        answer
    }

    fn post(
        &self,
        envelope: &[u8],
        gzip: &mut Gzip,
        body: &mut Vec<u8>,
    ) -> Result<Answer, ureq::Error> {
        let request = self
            .agent
            .post(&self.url)
            .header("X-Sentry-Auth", &self.auth)
            .header("Content-Type", "application/x-sentry-envelope");
        let mut response = if gzip.compress(envelope, body) {
            request.header("Content-Encoding", "gzip").send(&body[..])?
        } else {
            request.send(envelope)?
        };
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let answer = Answer {
            status: response.status().as_u16(),
            rate_limits: header("x-sentry-rate-limits"),
            retry_after: header("retry-after"),
        };
        // Read the (small) body, so the connection can be used again.
        let _ = response
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_vec();
        Ok(answer)
    }
}

/// What one connection reuses from one envelope to the next: the compressor and the
/// envelope and body buffers.
pub(crate) struct Scratch {
    gzip: Gzip,
    envelope: Vec<u8>,
    body: Vec<u8>,
}

/// Buffers past this size are given back after use: one big item should not pin a
/// megabyte per connection.
const KEPT_BUFFER: usize = 256 * 1024;

impl Scratch {
    pub(crate) fn new() -> Scratch {
        Scratch {
            gzip: Gzip::new(),
            envelope: Vec::new(),
            body: Vec::new(),
        }
    }

    fn trim(&mut self) {
        for buffer in [&mut self.envelope, &mut self.body] {
            if buffer.capacity() > KEPT_BUFFER {
                *buffer = Vec::new();
            }
        }
    }
}

/// The exponential backoff after `failures` failures in a row, with jitter (between
/// half and all of it), never over `max`.
pub(crate) fn backoff(failures: u32, min: Duration, max: Duration) -> Duration {
    let exp = min.saturating_mul(1u32 << failures.saturating_sub(1).min(20));
    let full = exp.min(max);
    full.mul_f64(0.5 + fastrand::f64() * 0.5)
}

/// Drops the pipeline reported since the last look, to be reported as well.
#[derive(Default)]
struct Seen {
    before_send: [u64; 2],
    sampled: [u64; 2],
    queue_full: [u64; 2],
    spans_dropped: u64,
}

pub(crate) struct Sender {
    shared: Arc<Shared>,
    transport: Arc<Transport>,
    /// The sender thread sends too, with its own compressor and buffers.
    scratch: Scratch,
    /// The threads that send alongside it, `connections - 1` of them.
    lanes: Lanes,
    timing: Timing,
    limits: RateLimits,
    failures: u32,
    next_try: Option<Instant>,
    last_report: Instant,
    /// Ids of items done with (delivered, or given up on) but still in the queue: their
    /// removal waits while the outbox's writer is busy with a push, rather than the
    /// sender. Skipped when reading the next batch; removed by the next batch's
    /// removal, or before the sender waits.
    removing: Vec<i64>,
    seen: Seen,
    checkpoints: Option<Checkpoints>,
}

/// The thread that checkpoints the outbox's log for the sender. Not the sender thread
/// itself: a checkpoint copies pages and syncs the file, and the lanes would wait for
/// it before their next batch.
struct Checkpoints {
    signal: Arc<(Mutex<CheckpointSignal>, Condvar)>,
    thread: std::thread::JoinHandle<()>,
}

#[derive(Default)]
struct CheckpointSignal {
    wanted: bool,
    stop: bool,
}

impl Checkpoints {
    fn start(shared: &Arc<Shared>) -> std::io::Result<Checkpoints> {
        let signal = Arc::new((Mutex::new(CheckpointSignal::default()), Condvar::new()));
        let (shared, theirs) = (shared.clone(), signal.clone());
        let thread = std::thread::Builder::new()
            .name("backstop-sentry-checkpoint".into())
            .spawn(move || {
                let (state, wake) = &*theirs;
                let lock = || state.lock().unwrap_or_else(PoisonError::into_inner);
                loop {
                    let mut signal = lock();
                    while !signal.wanted && !signal.stop {
                        signal = wake.wait(signal).unwrap_or_else(PoisonError::into_inner);
                    }
                    if signal.stop {
                        return;
                    }
                    signal.wanted = false;
                    drop(signal);
                    if let Err(error) = shared.queue.checkpoint() {
                        tracing::debug!(target: "backstop", "cannot checkpoint the export outbox: {error}");
                    }
                    // At most one checkpoint per interval; a stop ends the wait.
                    let until = Instant::now() + CHECKPOINT_EVERY;
                    let mut signal = lock();
                    while !signal.stop && Instant::now() < until {
                        signal = wake
                            .wait_timeout(signal, until.saturating_duration_since(Instant::now()))
                            .unwrap_or_else(PoisonError::into_inner)
                            .0;
                    }
                }
            })?;
        Ok(Checkpoints { signal, thread })
    }

    /// Asks for a checkpoint; returns at once.
    fn request(&self) {
        let (state, wake) = &*self.signal;
        state.lock().unwrap_or_else(PoisonError::into_inner).wanted = true;
        wake.notify_all();
    }

    /// Stops the thread, after the checkpoint under way if any.
    fn stop(self) {
        let (state, wake) = &*self.signal;
        state.lock().unwrap_or_else(PoisonError::into_inner).stop = true;
        wake.notify_all();
        let _ = self.thread.join();
    }
}

/// What one batch's sends are: the items, in the queue's order, taken one at a time
/// by whichever thread is free.
struct Work {
    items: Vec<(Kind, Arc<OutboxItem>)>,
    /// A client report, sent with the first item.
    report: Option<Vec<u8>>,
    /// The index of the next item to send.
    next: AtomicUsize,
    /// Set at the first failure worth retrying: the server is not taking any.
    stop: AtomicBool,
    /// The closing deadline: no send starts after it.
    until: Option<Instant>,
}

type Sent = Vec<(usize, Result<Answer, ureq::Error>)>;

impl Work {
    fn run(&self, transport: &Transport, scratch: &mut Scratch) -> Sent {
        let mut sent = Vec::new();
        while !self.stop.load(Ordering::Relaxed) && self.until.is_none_or(|t| Instant::now() < t) {
            let index = self.next.fetch_add(1, Ordering::Relaxed);
            let Some((kind, item)) = self.items.get(index) else {
                break;
            };
            let report = if index == 0 {
                self.report.as_deref()
            } else {
                None
            };
            let answer = transport.send_item(
                scratch,
                Some((*kind, &item.event_id, &item.payload)),
                report,
            );
            // A failure worth retrying stops the batch; so does a rate limit, so that
            // the rest of the batch is held to it (it stays queued, and the next read
            // applies the limit). Only sends already in flight on other lanes go out.
            if answer.as_ref().map_or(true, |a| {
                a.status >= 500 || a.status == 429 || a.rate_limits.is_some()
            }) {
                self.stop.store(true, Ordering::Relaxed);
            }
            sent.push((index, answer));
        }
        sent
    }
}

/// Threads that send alongside the sender thread, each over its own keep-alive
/// connection, with its own compressor and buffers. They live as long as the sender:
/// starting threads for each batch cost more than the sends on a fast server.
#[derive(Default)]
struct Lanes {
    jobs: Vec<mpsc::Sender<Arc<Work>>>,
    answers: Option<mpsc::Receiver<Sent>>,
}

impl Lanes {
    fn start(transport: &Arc<Transport>, n: usize) -> Lanes {
        let (answer, answers) = mpsc::channel();
        let mut jobs = Vec::with_capacity(n);
        for i in 0..n {
            let (job, work) = mpsc::channel::<Arc<Work>>();
            let transport = transport.clone();
            let answer = answer.clone();
            let started = std::thread::Builder::new()
                .name(format!("backstop-sentry-{}", i + 1))
                .spawn(move || {
                    let mut scratch = Scratch::new();
                    for work in work {
                        let sent = std::panic::catch_unwind(AssertUnwindSafe(|| {
                            work.run(&transport, &mut scratch)
                        }));
                        // A lane that panicked sent nothing that counts: its items stay
                        // queued.
                        let sent = sent.unwrap_or_else(|_| {
                            scratch = Scratch::new();
                            Vec::new()
                        });
                        if answer.send(sent).is_err() {
                            return;
                        }
                    }
                });
            match started {
                Ok(_) => jobs.push(job),
                Err(error) => {
                    // Fewer connections, not none: the sender thread sends too.
                    tracing::warn!(target: "backstop", "cannot start a Sentry sender thread: {error}");
                    break;
                }
            }
        }
        Lanes {
            jobs,
            answers: Some(answers),
        }
    }

    /// Gives `work` to at most `most` lanes; returns how many took it.
    fn dispatch(&self, work: &Arc<Work>, most: usize) -> usize {
        self.jobs
            .iter()
            .take(most)
            .filter(|lane| lane.send(work.clone()).is_ok())
            .count()
    }

    /// What `n` lanes sent of the work they were given.
    fn collect(&self, n: usize) -> Sent {
        let mut all = Sent::new();
        let Some(answers) = &self.answers else {
            return all;
        };
        for _ in 0..n {
            match answers.recv() {
                Ok(sent) => all.extend(sent),
                Err(_) => break,
            }
        }
        all
    }
}

enum Batch {
    Empty,
    Progress,
    Failed,
}

impl Sender {
    pub(crate) fn new(shared: Arc<Shared>, transport: Transport, timing: Timing) -> Sender {
        Sender {
            shared,
            transport: Arc::new(transport),
            scratch: Scratch::new(),
            lanes: Lanes::default(),
            timing,
            limits: RateLimits::default(),
            failures: 0,
            next_try: None,
            last_report: Instant::now(),
            removing: Vec::new(),
            seen: Seen::default(),
            checkpoints: None,
        }
    }

    pub(crate) fn run(mut self) {
        self.lanes = Lanes::start(&self.transport, self.timing.connections.saturating_sub(1));
        if self.shared.queue.is_durable() {
            match Checkpoints::start(&self.shared) {
                Ok(checkpoints) => self.checkpoints = Some(checkpoints),
                // The outbox's own fallback still checkpoints, on the push path.
                Err(error) => {
                    tracing::warn!(target: "backstop", "cannot start the Sentry outbox's checkpoint thread: {error}");
                }
            }
        }
        while let Some(closing) = self.wait() {
            self.collect_pipeline_drops();
            loop {
                if closing.is_some_and(|deadline| Instant::now() >= deadline) {
                    break;
                }
                match self.send_batch(closing) {
                    Batch::Progress => continue,
                    Batch::Empty | Batch::Failed => break,
                }
            }
            self.finish_removing();
            self.checkpoint();
            if closing.is_some() || self.last_report.elapsed() >= self.timing.report_interval {
                self.send_report_alone();
            }
            if let Some(deadline) = closing {
                let failing = self.next_try.is_some_and(|t| t > Instant::now());
                if Instant::now() >= deadline || failing || self.shared.queue.len().items == 0 {
                    break;
                }
            }
        }
        self.stop();
    }

    /// Waits for work (or a report, or the end of a backoff). `None` means stop now;
    /// otherwise the closing deadline, if closing.
    fn wait(&mut self) -> Option<Option<Instant>> {
        let shared = self.shared.clone();
        let mut signal = shared.lock();
        loop {
            let now = Instant::now();
            if let Some(deadline) = signal.closing {
                if now >= deadline {
                    return None;
                }
                // Closing: one more round, unless the server is failing past the deadline.
                if self.next_try.is_none_or(|t| t <= now) {
                    signal.work = false;
                    return Some(Some(deadline));
                }
            }
            let ready = self.next_try.is_none_or(|t| t <= now);
            if ready && signal.work {
                signal.work = false;
                return Some(None);
            }
            let report_at = self.last_report + self.timing.report_interval;
            if now >= report_at {
                // Time to report: a round with nothing to send does it.
                return Some(None);
            }
            let mut until = report_at;
            if let Some(t) = self.next_try.filter(|t| *t > now) {
                until = until.min(t);
            }
            if let Some(deadline) = signal.closing {
                until = until.min(deadline);
            }
            signal = shared
                .wake
                .wait_timeout(signal, until.saturating_duration_since(now))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            if self.next_try.is_some_and(|t| t <= Instant::now()) {
                // The backoff is over: try again whether or not new work came.
                signal.work = true;
            }
        }
    }

    /// Removes what [`send_batch`](Sender::send_batch) left to remove, waiting for the
    /// outbox's writer if need be.
    fn finish_removing(&mut self) {
        if self.removing.is_empty() {
            return;
        }
        match self.shared.queue.remove(&self.removing) {
            Ok(()) => {
                self.removing.clear();
                self.progress();
            }
            Err(error) => {
                tracing::warn!(target: "backstop", "cannot update the export outbox: {error}");
            }
        }
    }

    /// Has the outbox's log checkpointed (by the checkpoint thread, at most every
    /// [`CHECKPOINT_EVERY`]): after batches, and after every round, also while the
    /// server is down (the pushes go on growing the log then).
    fn checkpoint(&self) {
        if let Some(checkpoints) = &self.checkpoints {
            checkpoints.request();
        }
    }

    fn stop(&mut self) {
        self.finish_removing();
        if let Some(checkpoints) = self.checkpoints.take() {
            checkpoints.stop();
        }
        if !self.shared.queue.is_durable() {
            // Nowhere to keep them: they are lost with the process.
            if let Ok(left) = self.shared.queue.oldest(usize::MAX) {
                for item in left {
                    if let Some(kind) = Kind::from_item_type(&item.kind) {
                        self.shared
                            .outcomes
                            .dropped(Reason::NetworkError, kind, item.spans);
                    }
                }
                let ids: Vec<i64> = self
                    .shared
                    .queue
                    .oldest(usize::MAX)
                    .map(|l| l.iter().map(|i| i.id).collect())
                    .unwrap_or_default();
                let _ = self.shared.queue.remove(&ids);
            }
        }
        let mut signal = self.shared.lock();
        signal.stopped = true;
        self.shared.wake.notify_all();
    }

    fn progress(&self) {
        let mut signal = self.shared.lock();
        signal.batches += 1;
        self.shared.wake.notify_all();
    }

    /// `sends` sends failed in a way worth retrying: wait before the next.
    fn fail(&mut self, sends: u64) {
        self.failures += 1;
        self.shared
            .outcomes
            .retries
            .fetch_add(sends, Ordering::Relaxed);
        let wait = backoff(
            self.failures,
            self.timing.min_backoff,
            self.timing.max_backoff,
        );
        self.next_try = Some(Instant::now() + wait);
        self.shared.backing_off.store(true, Ordering::Relaxed);
    }

    fn succeed(&mut self) {
        self.failures = 0;
        self.next_try = None;
        self.shared.backing_off.store(false, Ordering::Relaxed);
    }

    /// Sends the oldest items, each in its own envelope (Sentry takes one event or
    /// transaction per envelope), over up to `connections` connections at once; applies
    /// the answers in the queue's order. Past `closing`, no more sends start.
    fn send_batch(&mut self, closing: Option<Instant>) -> Batch {
        // Items whose removal is still pending come first in the queue: read past them.
        let items = match self.shared.queue.oldest(BATCH + self.removing.len()) {
            Ok(mut items) => {
                if !self.removing.is_empty() {
                    items.retain(|item| !self.removing.contains(&item.id));
                    items.truncate(BATCH);
                }
                items
            }
            Err(error) => {
                tracing::warn!(target: "backstop", "cannot read the export outbox: {error}");
                self.fail(1);
                return Batch::Failed;
            }
        };
        if items.is_empty() {
            return Batch::Empty;
        }
        let mut done = Vec::with_capacity(items.len());
        let now = Instant::now();
        let mut to_send = Vec::with_capacity(items.len());
        for item in items {
            let Some(kind) = Kind::from_item_type(&item.kind) else {
                done.push(item.id);
                continue;
            };
            if self.limits.limited(kind.category(), now).is_some() {
                self.shared
                    .outcomes
                    .dropped(Reason::RatelimitBackoff, kind, item.spans);
                done.push(item.id);
            } else {
                to_send.push((kind, item));
            }
        }
        let report =
            if !to_send.is_empty() && self.last_report.elapsed() >= self.timing.report_interval {
                self.shared.outcomes.take_report()
            } else {
                None
            };
        let (report, counts) = report.unzip();
        let work = Arc::new(Work {
            items: to_send,
            report,
            next: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            until: closing,
        });
        let answers = self.send_all(&work);
        let mut result = Batch::Progress;
        let mut failures = 0;
        let mut report_delivered = false;
        for (index, answer) in answers.into_iter().enumerate() {
            // `None`: not sent, the batch stopped at a failure; it stays queued.
            let Some(answer) = answer else { continue };
            let (kind, ref item) = work.items[index];
            let delivered = match answer {
                Ok(answer) => {
                    self.limits.update(
                        answer.status,
                        answer.rate_limits.as_deref(),
                        answer.retry_after.as_deref(),
                        Instant::now(),
                    );
                    match answer.status {
                        200..=299 => {
                            self.shared.outcomes.sent(kind);
                            done.push(item.id);
                            true
                        }
                        429 => {
                            self.shared
                                .outcomes
                                .rejected_rate_limited
                                .fetch_add(1, Ordering::Relaxed);
                            done.push(item.id);
                            false
                        }
                        500..=599 => {
                            failures += 1;
                            false
                        }
                        _ => {
                            // 400, 401, 403, 413...: sending it again gets the same answer.
                            self.shared
                                .outcomes
                                .dropped(Reason::SendError, kind, item.spans);
                            done.push(item.id);
                            false
                        }
                    }
                }
                Err(error) => {
                    tracing::debug!(target: "backstop", "sending to Sentry failed: {error}");
                    failures += 1;
                    false
                }
            };
            if index == 0 {
                report_delivered = delivered;
            }
        }
        if failures > 0 {
            self.fail(failures);
            result = Batch::Failed;
        } else if !work.items.is_empty() {
            self.succeed();
        }
        if let Some(counts) = counts {
            if report_delivered {
                self.last_report = Instant::now();
                self.shared
                    .outcomes
                    .client_reports_sent
                    .fetch_add(1, Ordering::Relaxed);
            } else {
                self.shared.outcomes.restore(counts);
            }
        }
        // At least once: an item leaves the queue only now, after its answer. If a push
        // is being written, the removal waits for a later batch instead of the sender.
        self.removing.extend(done);
        match self.shared.queue.try_remove(&self.removing) {
            Ok(true) => self.removing.clear(),
            // A writer busy batch after batch: wait for it once the pending ids would
            // make the next reads long (they are read past, and looked up, each time).
            Ok(false) if self.removing.len() >= 4 * BATCH => self.finish_removing(),
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(target: "backstop", "cannot update the export outbox: {error}");
            }
        }
        self.progress();
        self.checkpoint();
        result
    }

    /// Sends `work`'s items over the lanes and this thread at once; an item's answer is
    /// at its index, `None` for those not sent.
    fn send_all(&mut self, work: &Arc<Work>) -> Vec<Option<Result<Answer, ureq::Error>>> {
        let mut answers: Vec<Option<Result<Answer, ureq::Error>>> =
            (0..work.items.len()).map(|_| None).collect();
        // A helper for each item past the first that this thread sends itself.
        let helpers = self
            .lanes
            .dispatch(work, work.items.len().saturating_sub(1));
        for (index, answer) in work.run(&self.transport, &mut self.scratch) {
            answers[index] = Some(answer);
        }
        for (index, answer) in self.lanes.collect(helpers) {
            answers[index] = Some(answer);
        }
        answers
    }

    /// Sends pending drops in an envelope of their own, when no event carried them.
    fn send_report_alone(&mut self) {
        self.collect_pipeline_drops();
        self.last_report = Instant::now();
        let now = Instant::now();
        if self.next_try.is_some_and(|t| t > now) || self.limits.all_limited(now) {
            return;
        }
        let Some((payload, counts)) = self.shared.outcomes.take_report() else {
            return;
        };
        match self
            .transport
            .send_item(&mut self.scratch, None, Some(&payload))
        {
            Ok(answer) if (200..300).contains(&answer.status) => {
                self.shared
                    .outcomes
                    .client_reports_sent
                    .fetch_add(1, Ordering::Relaxed);
            }
            Ok(answer) if answer.status < 500 => {
                // Refused: a report is not worth retrying.
            }
            _ => self.shared.outcomes.restore(counts),
        }
    }

    /// Adds what the pipeline dropped since the last look.
    fn collect_pipeline_drops(&mut self) {
        let client = self
            .shared
            .client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(client) = client else { return };
        let stats = client.stats();
        let outcomes = &self.shared.outcomes;
        for (i, (kind, category)) in [
            (stats.events, crate::Category::Error),
            (stats.transactions, crate::Category::Transaction),
        ]
        .into_iter()
        .enumerate()
        {
            let delta = |seen: &mut u64, now: u64, reason: Reason| {
                outcomes.record(reason, category, now.saturating_sub(*seen));
                *seen = now;
            };
            delta(
                &mut self.seen.before_send[i],
                kind.dropped_before_send,
                Reason::BeforeSend,
            );
            delta(
                &mut self.seen.sampled[i],
                kind.dropped_sampled,
                Reason::SampleRate,
            );
            delta(
                &mut self.seen.queue_full[i],
                kind.dropped_queue_full,
                Reason::QueueOverflow,
            );
        }
        outcomes.record(
            Reason::BufferOverflow,
            crate::Category::Span,
            stats.spans_dropped.saturating_sub(self.seen.spans_dropped),
        );
        self.seen.spans_dropped = stats.spans_dropped;
    }
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_grows_with_jitter_and_stops_at_the_cap() {
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(300));
        for failures in 1..40 {
            let wait = backoff(failures, min, max);
            let full = (min * 2u32.pow((failures - 1).min(20))).min(max);
            assert!(wait >= full / 2 && wait <= full, "{failures}: {wait:?}");
        }
        assert!(backoff(30, min, max) <= max);
    }
}
