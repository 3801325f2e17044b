//! The writer: [`SqliteStore`] is the pipeline [`Sink`] that writes each batch in one
//! SQLite transaction, then prunes by age and row count.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use backstop_core::protocol::{Event, PerformanceProblem, Transaction, User};
use backstop_core::{LogEvery, Record, Sink, SinkError};
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};
use serde_json::Value;

use crate::alerts::{BatchObserver, IssueOutcome};
use crate::budget::{Budget, KeepBudget, Offer};
use crate::error::StoreError;
use crate::metrics::MetricsRetention;
use crate::reader::{IssueId, StoreReader};
use crate::schema::{self, Mode};
use crate::stats::{StoreCounters, StoreStats};

/// Rows deleted per pruning transaction: small, so the write lock is short.
const PRUNE_CHUNK: usize = 1000;
/// Pruning after a batch stops after this long and carries on after the next one.
const PRUNE_BUDGET: Duration = Duration::from_millis(250);
/// Age-based pruning runs after a batch at most this often.
const PRUNE_EVERY: Duration = Duration::from_secs(10);

/// How long rows are kept. Defaults: 7 days, 10,000 transactions, 10,000 events per
/// issue (the first and the latest are kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Rows older than this are deleted; issues not seen for this long go with them.
    pub max_age: Option<Duration>,
    /// The most transactions kept (with their spans); the oldest go first.
    pub max_transactions: Option<u64>,
    /// The most events kept per issue: the first event and the latest ones.
    pub max_events_per_issue: Option<u64>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_age: Some(Duration::from_secs(7 * 24 * 3600)),
            max_transactions: Some(10_000),
            max_events_per_issue: Some(10_000),
        }
    }
}

/// Builds a [`SqliteStore`] with non-default retention or limits.
///
/// ```
/// use std::time::Duration;
/// use backstop_store::SqliteStore;
///
/// let store = SqliteStore::builder(":memory:")
///     .max_age(Duration::from_secs(3 * 24 * 3600))
///     .max_transactions(50_000)
///     .max_events_per_issue(1_000)
///     .open()
///     .unwrap();
/// # drop(store);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct StoreBuilder {
    path: PathBuf,
    retention: Retention,
    busy_timeout: Duration,
    max_size: Option<u64>,
    metrics_retention: MetricsRetention,
    keep_budget: Option<KeepBudget>,
}

impl StoreBuilder {
    /// How many sampled transactions to keep per route and minute (see
    /// [`KeepBudget`] for the defaults).
    pub fn keep_budget(mut self, budget: KeepBudget) -> Self {
        self.keep_budget = Some(budget);
        self
    }

    /// Keeps every sampled transaction (until [`Retention`] prunes them): the store's
    /// write rate then follows the traffic.
    pub fn no_keep_budget(mut self) -> Self {
        self.keep_budget = None;
        self
    }

    /// How long route metrics are kept, and when minute rows become hour rows
    /// (default: minutes for a day, hours for 30 days).
    pub fn metrics_retention(mut self, retention: MetricsRetention) -> Self {
        self.metrics_retention = retention;
        self
    }

    /// Deletes rows older than `max_age` (default 7 days).
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.retention.max_age = Some(max_age);
        self
    }

    /// Keeps at most `max` transactions (default 10,000).
    pub fn max_transactions(mut self, max: u64) -> Self {
        self.retention.max_transactions = Some(max);
        self
    }

    /// Keeps at most `max` events per issue, the first and the latest (default 10,000;
    /// at least 2).
    pub fn max_events_per_issue(mut self, max: u64) -> Self {
        self.retention.max_events_per_issue = Some(max.max(2));
        self
    }

    /// Replaces the whole retention policy (`None` fields keep rows forever).
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// How long a write waits for another connection's lock before the batch is
    /// dropped (default 2 s).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Caps the database file at about `bytes` (SQLite's `max_page_count`). A batch that
    /// would grow it further fails as if the disk were full, and is dropped; retention
    /// frees room for later ones.
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = Some(bytes);
        self
    }

    /// Opens (creating if needed) and migrates the database.
    pub fn open(self) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(self)
    }
}

/// The embedded SQLite store: a [`Sink`] that keeps events grouped into issues, and
/// transactions with their spans and performance problems (grouped into issues too).
/// Read it with a [`StoreReader`].
///
/// ```
/// use backstop_store::SqliteStore;
///
/// let dir = tempfile::tempdir().unwrap();
/// let store = SqliteStore::open(dir.path().join("backstop.db")).unwrap();
/// let reader = store.reader();
/// let backstop = backstop_core::init(
///     backstop_core::Options::new().sink(store).console(false),
/// )
/// .unwrap();
/// backstop.capture_event(backstop_core::Event::new(backstop_core::Level::Error));
/// assert!(backstop.flush(std::time::Duration::from_secs(5)));
/// assert_eq!(reader.issues(&Default::default()).unwrap().len(), 1);
/// ```
pub struct SqliteStore {
    path: PathBuf,
    retention: Retention,
    busy_timeout: Duration,
    max_pages: Option<u64>,
    /// `None` after a failure: reopened before the next batch.
    conn: Option<Arc<Mutex<Connection>>>,
    /// Device and inode of the file when opened: a change means it was replaced.
    identity: Option<(u64, u64)>,
    /// `:memory:` readers share the writer's connection.
    memory: Option<Arc<Mutex<Connection>>>,
    counters: StoreCounters,
    /// Write failures are logged at most once a minute.
    failure_log: LogEvery,
    failing: bool,
    last_pruned: Option<Instant>,
    metrics_retention: MetricsRetention,
    /// When route metrics were last rolled up (see [`crate::metrics::ROLL_UP_EVERY`]).
    last_rolled_up: Option<Instant>,
    /// Which transactions to keep; `None` keeps all.
    budget: Option<Budget>,
    /// The batch's transactions not to write (reused between batches).
    skip: HashSet<backstop_core::EventId>,
    /// Told what each committed batch did to issues (alerts).
    observer: Option<Box<dyn BatchObserver>>,
    /// Lent to readers, for the dashboard's test button.
    alert_test: Option<Arc<dyn crate::AlertTest>>,
    /// Reused across batches, so reporting allocates only while it grows.
    outcomes: Vec<IssueOutcome>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("retention", &self.retention)
            .field("open", &self.conn.is_some())
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` with the default retention.
    /// `":memory:"` keeps everything in memory (for tests).
    ///
    /// A path that cannot be opened, or a file that is not a Backstop database, is an
    /// error naming the path.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        SqliteStore::builder(path).open()
    }

    /// Starts building a store with non-default retention or limits.
    pub fn builder(path: impl AsRef<Path>) -> StoreBuilder {
        StoreBuilder {
            path: path.as_ref().to_owned(),
            retention: Retention::default(),
            busy_timeout: Duration::from_secs(2),
            max_size: None,
            metrics_retention: MetricsRetention::default(),
            keep_budget: Some(KeepBudget::default()),
        }
    }

    fn open_with(builder: StoreBuilder) -> Result<SqliteStore, StoreError> {
        let max_pages = builder.max_size.map(|b| (b / 4096).max(16));
        let mut store = SqliteStore {
            path: builder.path,
            retention: builder.retention,
            busy_timeout: builder.busy_timeout,
            max_pages,
            conn: None,
            identity: None,
            memory: None,
            counters: StoreCounters::default(),
            failure_log: LogEvery::minute(),
            failing: false,
            last_pruned: None,
            metrics_retention: builder.metrics_retention,
            last_rolled_up: None,
            budget: builder.keep_budget.map(Budget::new),
            skip: HashSet::new(),
            observer: None,
            alert_test: None,
            outcomes: Vec::new(),
        };
        store.connect()?;
        if schema::is_memory(&store.path) {
            store.memory = store.conn.clone();
        }
        Ok(store)
    }

    /// The database path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The retention policy.
    pub fn retention(&self) -> Retention {
        self.retention
    }

    /// A reader for the dashboard and alerts. Cheap to clone; each query uses its own
    /// read-only connection and never blocks this writer.
    pub fn reader(&self) -> StoreReader {
        StoreReader::new(
            self.path.clone(),
            self.busy_timeout,
            self.memory.clone(),
            Some((self.counters.clone(), self.retention)),
        )
        .with_alert_test(self.alert_test.clone())
    }

    /// Lends readers made from now on (and so the dashboard) a way to send a test
    /// notification. Alerts call this when they start watching the store.
    pub fn offer_alert_test(&mut self, test: Arc<dyn crate::AlertTest>) {
        self.alert_test = Some(test);
    }

    /// Tells `observer` what each batch did to issues, on the worker thread right after
    /// the batch is committed. Alerts use this; one observer at a time.
    pub fn observe(&mut self, observer: impl BatchObserver) {
        self.observer = Some(Box::new(observer));
    }

    /// The alert history kept in this store.
    pub fn alert_history(&self) -> crate::AlertHistory {
        crate::AlertHistory::new(self.path.clone(), self.busy_timeout, self.memory.clone())
    }

    /// A handle to the store's counters that stays valid after the store has moved
    /// into the pipeline.
    pub fn counters(&self) -> StoreCounters {
        self.counters.clone()
    }

    /// The store's counters now.
    pub fn stats(&self) -> StoreStats {
        self.counters.snapshot()
    }

    /// Writes one batch in one transaction, then prunes what retention allows (for a
    /// bounded time). This is what [`Sink::consume`] does, without the pipeline.
    pub fn write(&mut self, batch: &[Record]) -> Result<(), StoreError> {
        let (events, transactions) = count_kinds(batch);
        self.apply_budget(batch);
        // `skip` may also name earlier batches' transactions, pushed out since.
        let skipped = batch
            .iter()
            .filter_map(Record::as_transaction)
            .filter(|t| self.skip.contains(&t.event_id))
            .count() as u64;
        let transactions = transactions - skipped;
        let result = self.try_write(batch);
        if let Some(budget) = &mut self.budget {
            budget.batch_done();
        }
        match result {
            Ok(trimmed) => {
                self.counters.written(events, transactions);
                self.counters.pruned(0, trimmed as u64, 0);
                if self.failing {
                    self.failing = false;
                    tracing::info!(target: "backstop", path = %self.path.display(), "store writes resumed");
                }
                if let Some(observer) = &mut self.observer {
                    observer.written(batch, &self.outcomes);
                }
                // Age-based pruning runs now and then; a backlog over the row limit
                // (the limit was lowered) is worked off after every batch.
                let due = self.last_pruned.is_none_or(|t| t.elapsed() >= PRUNE_EVERY);
                if due || trimmed >= PRUNE_CHUNK {
                    self.last_pruned = Some(Instant::now());
                    if let Err(error) = self.prune(Some(Instant::now() + PRUNE_BUDGET)) {
                        self.report(&error, "prune");
                    }
                }
                Ok(())
            }
            Err(error) => {
                self.counters
                    .failed(events, transactions, error.to_string());
                self.failing = true;
                // The batch's picks were never stored, and the file may be another
                // one next time: the budget starts its minutes afresh rather than
                // count rows that are not there.
                if let Some(budget) = &mut self.budget {
                    budget.reset();
                }
                if !is_transient(&error) {
                    // Start afresh next time: the file may be gone or replaced, or the
                    // connection stuck in a failed transaction.
                    self.conn = None;
                }
                self.report(&error, "write a batch (dropped)");
                Err(error)
            }
        }
    }

    /// Runs retention to completion: deletes everything past `max_age` and the row
    /// limits, in small transactions. The store also does this after every batch, for
    /// a bounded time.
    pub fn prune_now(&mut self) -> Result<(), StoreError> {
        self.prune(None)?;
        self.roll_up(None)
    }

    /// Adds route metrics to their minute rows (the parts of a minute add up). This is
    /// what [`Sink::consume_metrics`] does, without the pipeline; about once a minute
    /// it also rolls old minute rows up into hours and deletes expired ones.
    pub fn write_metrics(
        &mut self,
        minutes: &[backstop_core::RouteMinute],
    ) -> Result<(), StoreError> {
        let conn = self.connection()?;
        let result = {
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            crate::metrics::write(&mut conn, minutes)
        };
        if let Err(source) = result {
            let error = self.sqlite_err(source);
            self.report(&error, "write route metrics (dropped)");
            return Err(error);
        }
        let due = self
            .last_rolled_up
            .is_none_or(|t| t.elapsed() >= crate::metrics::ROLL_UP_EVERY);
        if due {
            self.last_rolled_up = Some(Instant::now());
            if let Err(error) = self.roll_up(Some(Instant::now() + PRUNE_BUDGET)) {
                self.report(&error, "roll up route metrics");
            }
        }
        Ok(())
    }

    fn roll_up(&mut self, deadline: Option<Instant>) -> Result<(), StoreError> {
        let conn = self.connection()?;
        let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
        crate::metrics::roll_up(
            &mut conn,
            &self.metrics_retention,
            SystemTime::now(),
            deadline,
        )
        .map(drop)
        .map_err(|e| self.sqlite_err(e))
    }

    /// Prunes, gives free pages back to the file system (`incremental_vacuum`) and
    /// truncates the write-ahead log, so the file size reflects what is kept.
    pub fn compact(&mut self) -> Result<(), StoreError> {
        self.prune(None)?;
        let conn = self.connection()?;
        let conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
        incremental_vacuum(&conn, None).map_err(|e| self.sqlite_err(e))?;
        if self.memory.is_none() {
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .map_err(|e| self.sqlite_err(e))?;
        }
        Ok(())
    }

    fn sqlite_err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn connect(&mut self) -> Result<(), StoreError> {
        let conn = schema::open(&self.path, Mode::Write, self.busy_timeout, self.max_pages)?;
        self.identity = file_identity(&self.path);
        self.conn = Some(Arc::new(Mutex::new(conn)));
        Ok(())
    }

    /// The writer's connection, reopened if it failed or the file was replaced.
    fn connection(&mut self) -> Result<Arc<Mutex<Connection>>, StoreError> {
        if self.memory.is_none()
            && self.conn.is_some()
            && file_identity(&self.path) != self.identity
        {
            // Removed or replaced under us: SQLite would keep writing to the unlinked
            // file, so follow the path instead.
            self.conn = None;
        }
        if self.conn.is_none() {
            match &self.memory {
                Some(memory) => self.conn = Some(memory.clone()),
                None => {
                    self.connect()?;
                    self.counters.reopened();
                }
            }
        }
        Ok(self.conn.clone().expect("connected above"))
    }

    /// Decides which of the batch's transactions the keep budget keeps: those not
    /// kept go into `self.skip`, and the budget's `evicted` lists the rows written
    /// earlier that are no longer kept.
    fn apply_budget(&mut self, batch: &[Record]) {
        self.skip.clear();
        let Some(budget) = &mut self.budget else {
            return;
        };
        for t in batch.iter().filter_map(Record::as_transaction) {
            let problems: Vec<&str> = t.problems.iter().map(|p| p.fingerprint.as_str()).collect();
            let keep = match budget.settle(t.event_id, &problems) {
                Some(keep) => keep,
                None => {
                    let status = t.trace.status.map(|s| s.as_str());
                    let http_status = t
                        .trace
                        .data
                        .get("http.response.status_code")
                        .and_then(Value::as_i64);
                    let offer = Offer {
                        id: t.event_id,
                        route: &t.name,
                        at: t.timestamp,
                        duration: t
                            .timestamp
                            .duration_since(t.start_timestamp)
                            .unwrap_or_default(),
                        error: is_error(status, http_status),
                        may_have_problem: false,
                    };
                    budget.offer(&offer, Some(&problems))
                }
            };
            if !keep {
                self.skip.insert(t.event_id);
            }
        }
        // Pushed out by a later one in the same batch: not written at all.
        self.skip.extend(budget.evicted.iter().copied());
        let over = budget.declined + budget.evicted.len() as u64;
        budget.declined = 0;
        self.counters.over_budget(over);
    }

    fn try_write(&mut self, batch: &[Record]) -> Result<usize, StoreError> {
        let conn = self.connection()?;
        let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
        self.outcomes.clear();
        let outcomes = self.observer.is_some().then_some(&mut self.outcomes);
        let evicted = self.budget.as_ref().map_or(&[][..], |b| &b.evicted[..]);
        let budget = BatchBudget {
            skip: &self.skip,
            evicted,
        };
        write_batch(&mut conn, batch, &self.retention, &budget, outcomes)
            .map_err(|e| self.sqlite_err(e))
    }

    fn prune(&mut self, deadline: Option<Instant>) -> Result<(), StoreError> {
        let conn = self.connection()?;
        let conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
        let now = SystemTime::now();
        let result = prune(&conn, &self.retention, now, deadline, &self.counters);
        if result.is_ok() {
            self.counters.prune_finished(now);
        }
        result.map_err(|e| self.sqlite_err(e))
    }

    fn report(&mut self, error: &StoreError, what: &str) {
        let Some(suppressed) = self.failure_log.due() else {
            return;
        };
        let stats = self.counters.snapshot();
        tracing::error!(
            target: "backstop",
            path = %self.path.display(),
            suppressed,
            batches_failed = stats.batches_failed,
            "store failed to {what}: {error}"
        );
    }
}

impl Sink for SqliteStore {
    fn name(&self) -> &str {
        "sqlite"
    }

    /// The reader, for the dashboard the adapters mount.
    fn shared(&self) -> Option<std::sync::Arc<dyn std::any::Any + Send + Sync>> {
        Some(std::sync::Arc::new(self.reader()))
    }

    fn consume(&mut self, batch: &[Record]) -> Result<(), SinkError> {
        self.write(batch).map_err(SinkError::from)
    }

    fn wants_transaction(&mut self, summary: &backstop_core::TransactionSummary<'_>) -> bool {
        let Some(budget) = &mut self.budget else {
            return true;
        };
        let offer = Offer {
            id: summary.event_id,
            route: summary.name,
            at: summary.ended,
            duration: summary.duration,
            error: summary.error,
            may_have_problem: summary.may_have_problem,
        };
        budget.offer(&offer, None)
    }

    fn consume_metrics(&mut self, minutes: &[backstop_core::RouteMinute]) -> Result<(), SinkError> {
        self.write_metrics(minutes).map_err(SinkError::from)
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        // Every batch is committed when `consume` returns (WAL, synchronous=NORMAL:
        // durable across a process crash), so there is nothing to flush. It is a
        // chance to catch up on pruning when the worker is otherwise idle.
        let due = self.last_pruned.is_none_or(|t| t.elapsed() >= PRUNE_EVERY);
        if self.conn.is_some() && due {
            self.last_pruned = Some(Instant::now());
            if let Err(error) = self.prune(Some(Instant::now() + PRUNE_BUDGET)) {
                self.report(&error, "prune");
            }
        }
        Ok(())
    }
}

/// Busy and full are cleared by waiting; anything else reopens the connection.
fn is_transient(error: &StoreError) -> bool {
    matches!(
        error.sqlite_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::DiskFull)
    )
}

#[cfg(unix)]
fn file_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn file_identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.len().min(1), 0))
}

fn count_kinds(batch: &[Record]) -> (u64, u64) {
    let events = batch.iter().filter(|r| r.as_event().is_some()).count() as u64;
    (events, batch.len() as u64 - events)
}

// ---------------------------------------------------------------------------------------
// Writing

pub(crate) fn millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

fn micros(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_micros() as i64,
        Err(e) => -(e.duration().as_micros() as i64),
    }
}

/// Who an event or transaction affected: the user id, else the IP address.
pub(crate) fn user_key(user: Option<&User>) -> Option<String> {
    let user = user?;
    if let Some(id) = &user.id {
        return Some(format!("id:{id}"));
    }
    user.ip_address.as_ref().map(|ip| format!("ip:{ip}"))
}

/// Whether a transaction counts as failed: a 5xx, or (with no HTTP status) a status
/// other than ok or cancelled.
fn is_error(status: Option<&str>, http_status: Option<i64>) -> bool {
    match http_status {
        Some(code) => code >= 500,
        None => !matches!(status, None | Some("ok" | "cancelled")),
    }
}

/// Writes a batch in one transaction, trimming the transactions over the row limit in
/// the same commit (at most one chunk). Returns how many were trimmed.
/// What the keep budget decided for a batch.
struct BatchBudget<'a> {
    /// Transactions of the batch not to write.
    skip: &'a HashSet<backstop_core::EventId>,
    /// Transactions written earlier and no longer kept.
    evicted: &'a [backstop_core::EventId],
}

fn write_batch(
    conn: &mut Connection,
    batch: &[Record],
    retention: &Retention,
    budget: &BatchBudget<'_>,
    mut outcomes: Option<&mut Vec<IssueOutcome>>,
) -> rusqlite::Result<usize> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut releases: HashMap<&str, (i64, i64)> = HashMap::new();
    let mut over_cap: HashSet<i64> = HashSet::new();
    for (index, record) in batch.iter().enumerate() {
        let outcomes = outcomes.as_deref_mut();
        let (release, ts) = match record {
            Record::Event(event) => {
                if let Some(issue) = write_event(&tx, event, retention, index, outcomes)? {
                    over_cap.insert(issue);
                }
                (event.release.as_deref(), millis(event.timestamp))
            }
            Record::Transaction(t) if budget.skip.contains(&t.event_id) => {
                (t.release.as_deref(), millis(t.start_timestamp))
            }
            Record::Transaction(t) => {
                write_transaction(&tx, t, index, outcomes)?;
                (t.release.as_deref(), millis(t.start_timestamp))
            }
        };
        if let Some(release) = release {
            let seen = releases.entry(release).or_insert((ts, ts));
            seen.0 = seen.0.min(ts);
            seen.1 = seen.1.max(ts);
        }
    }
    if !releases.is_empty() {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO releases (version, first_seen, last_seen) VALUES (?1, ?2, ?3)
             ON CONFLICT (version) DO UPDATE SET
                first_seen = min(first_seen, excluded.first_seen),
                last_seen = max(last_seen, excluded.last_seen)",
        )?;
        for (version, (first, last)) in releases {
            stmt.execute(params![version, first, last])?;
        }
    }
    if let Some(cap) = retention.max_events_per_issue {
        let mut stmt = tx.prepare_cached(
            "DELETE FROM events WHERE issue_id = ?1
               AND id > (SELECT min(id) FROM events WHERE issue_id = ?1)
               AND id < (SELECT id FROM events WHERE issue_id = ?1
                         ORDER BY id DESC LIMIT 1 OFFSET ?2)",
        )?;
        for issue in over_cap {
            stmt.execute(params![issue, cap.max(2) as i64 - 2])?;
        }
    }
    if !budget.evicted.is_empty() {
        let event_ids = serde_json::to_string(
            &budget
                .evicted
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
        )
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        let ids = ids_of_events(&tx, &event_ids)?;
        delete_transactions(&tx, &ids)?;
    }
    let trimmed = match retention.max_transactions {
        Some(max) => trim_transactions(&tx, max)?,
        None => 0,
    };
    tx.commit()?;
    Ok(trimmed)
}

/// Writes one event and updates its issue. Returns the issue's id if it now holds more
/// events than retention keeps.
fn write_event(
    tx: &rusqlite::Transaction<'_>,
    event: &Event,
    retention: &Retention,
    index: usize,
    outcomes: Option<&mut Vec<IssueOutcome>>,
) -> rusqlite::Result<Option<i64>> {
    let fingerprint = event.group_hash();
    let title = event.title();
    let culprit = event.culprit.as_deref().or(event.transaction.as_deref());
    let ts = millis(event.timestamp);
    let level = event.level.as_str();
    let release = event.release.as_deref();
    let environment = event.environment.as_deref();
    let user = user_key(event.user.as_ref());

    let (fingerprint, existing) = find_issue(tx, &fingerprint, ERROR_KIND)?;
    let issue_id = match existing {
        Some(id) => id,
        None => insert_issue(
            tx,
            &NewIssue {
                fingerprint: &fingerprint,
                kind: ERROR_KIND,
                title: &title,
                culprit,
                level,
                query_group: None,
                ts,
                release,
                environment,
            },
        )?,
    };

    let trace_id = event
        .contexts
        .get("trace")
        .and_then(|t| t.get("trace_id"))
        .and_then(Value::as_str);
    let json = serde_json::to_string(event)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    let inserted = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO events (event_id, issue_id, timestamp, level, title, culprit,
                transaction_name, release, environment, user_key, trace_id, json)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?
        .execute(params![
            event.event_id.to_string(),
            issue_id,
            ts,
            level,
            title,
            culprit,
            event.transaction.as_deref(),
            release,
            environment,
            user.as_deref(),
            trace_id,
            json,
        ])?;
    if inserted == 0 {
        // The same event id again (a retry): already counted.
        return Ok(None);
    }

    let (times_seen, regressed) = record_occurrence(
        tx,
        issue_id,
        &Occurrence {
            ts,
            user: user.as_deref(),
            release,
            environment,
            title: &title,
            culprit,
            level,
        },
    )?;
    if let Some(outcomes) = outcomes {
        outcomes.push(IssueOutcome {
            issue: IssueId(issue_id),
            record: index,
            problem: None,
            created: existing.is_none(),
            regressed,
        });
    }
    let over = retention
        .max_events_per_issue
        .is_some_and(|cap| times_seen as u64 > cap.max(2));
    Ok(over.then_some(issue_id))
}

/// The `kind` of error issues; performance issues use [`ProblemKind::as_str`].
///
/// [`ProblemKind::as_str`]: backstop_core::protocol::ProblemKind::as_str
const ERROR_KIND: &str = "error";

/// Finds the issue of `fingerprint` and `kind`. Errors and performance problems share
/// the fingerprint column; should a fingerprint already belong to an issue of another
/// kind, this kind's occurrences go to the key `kind:fingerprint` instead (a plain
/// fingerprint is hex, so the two cannot meet), rather than mixing the two.
fn find_issue<'f>(
    tx: &rusqlite::Transaction<'_>,
    fingerprint: &'f str,
    kind: &str,
) -> rusqlite::Result<(Cow<'f, str>, Option<i64>)> {
    let mut stmt = tx.prepare_cached("SELECT id, kind FROM issues WHERE fingerprint = ?1")?;
    let found: Option<(i64, String)> = stmt
        .query_row([fingerprint], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match found {
        None => Ok((Cow::Borrowed(fingerprint), None)),
        Some((id, found_kind)) if found_kind == kind => Ok((Cow::Borrowed(fingerprint), Some(id))),
        Some(_) => {
            let key = format!("{kind}:{fingerprint}");
            let id = stmt.query_row([&key], |r| r.get(0)).optional()?;
            Ok((Cow::Owned(key), id))
        }
    }
}

/// A new issue's first row.
struct NewIssue<'a> {
    fingerprint: &'a str,
    kind: &'a str,
    title: &'a str,
    culprit: Option<&'a str>,
    level: &'a str,
    query_group: Option<&'a str>,
    ts: i64,
    release: Option<&'a str>,
    environment: Option<&'a str>,
}

fn insert_issue(tx: &rusqlite::Transaction<'_>, issue: &NewIssue<'_>) -> rusqlite::Result<i64> {
    tx.prepare_cached(
        "INSERT INTO issues (fingerprint, kind, title, culprit, level, query_group,
            first_seen, last_seen, first_release, last_release, first_environment,
            last_environment)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?8, ?9, ?9)",
    )?
    .execute(params![
        issue.fingerprint,
        issue.kind,
        issue.title,
        issue.culprit,
        issue.level,
        issue.query_group,
        issue.ts,
        issue.release,
        issue.environment,
    ])?;
    Ok(tx.last_insert_rowid())
}

/// One occurrence of an issue (an event, or a problem in a transaction), as it
/// updates the issue.
struct Occurrence<'a> {
    ts: i64,
    user: Option<&'a str>,
    release: Option<&'a str>,
    environment: Option<&'a str>,
    title: &'a str,
    culprit: Option<&'a str>,
    level: &'a str,
}

/// Counts an occurrence on its issue: users, releases, environments, first and last
/// seen, and the status (a resolved issue reopens as regressed). Returns the issue's
/// new count, and whether this occurrence reopened it.
fn record_occurrence(
    tx: &rusqlite::Transaction<'_>,
    issue_id: i64,
    o: &Occurrence<'_>,
) -> rusqlite::Result<(i64, bool)> {
    let mut new_user = 0;
    if let Some(user) = o.user {
        new_user = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO issue_users (issue_id, user_key) VALUES (?1, ?2)",
            )?
            .execute(params![issue_id, user])?;
    }
    if let Some(release) = o.release {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO issue_releases (issue_id, release) VALUES (?1, ?2)",
        )?
        .execute(params![issue_id, release])?;
    }
    if let Some(environment) = o.environment {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO issue_environments (issue_id, environment) VALUES (?1, ?2)",
        )?
        .execute(params![issue_id, environment])?;
    }
    // SET expressions see the row as it was, so `status = 'resolved'` below is the old
    // status: a resolved issue that recurs is reopened and flagged regressed.
    tx.prepare_cached(
        "UPDATE issues SET
            times_seen = times_seen + 1,
            users = users + ?2,
            regressed = CASE WHEN status = 'resolved' THEN 1 ELSE regressed END,
            status_changed = CASE WHEN status = 'resolved' THEN ?3 ELSE status_changed END,
            status = CASE WHEN status = 'resolved' THEN 'unresolved' ELSE status END,
            first_release = CASE WHEN ?3 < first_seen THEN ?4 ELSE first_release END,
            first_environment = CASE WHEN ?3 < first_seen THEN ?5 ELSE first_environment END,
            first_seen = min(first_seen, ?3),
            last_release = CASE WHEN ?3 >= last_seen THEN ?4 ELSE last_release END,
            last_environment = CASE WHEN ?3 >= last_seen THEN ?5 ELSE last_environment END,
            title = CASE WHEN ?3 >= last_seen THEN ?6 ELSE title END,
            culprit = CASE WHEN ?3 >= last_seen THEN ?7 ELSE culprit END,
            level = CASE WHEN ?3 >= last_seen THEN ?8 ELSE level END,
            last_seen = max(last_seen, ?3)
         WHERE id = ?1
         RETURNING times_seen, regressed = 1 AND status_changed IS ?3",
    )?
    .query_row(
        params![
            issue_id,
            new_user as i64,
            o.ts,
            o.release,
            o.environment,
            o.title,
            o.culprit,
            o.level
        ],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

fn write_transaction(
    tx: &rusqlite::Transaction<'_>,
    t: &Transaction,
    index: usize,
    mut outcomes: Option<&mut Vec<IssueOutcome>>,
) -> rusqlite::Result<()> {
    let status = t.trace.status.map(|s| s.as_str());
    let http_status = t
        .trace
        .data
        .get("http.response.status_code")
        .and_then(Value::as_i64);
    let start = micros(t.start_timestamp);
    let duration = micros(t.timestamp) - start;
    let queries = t
        .spans
        .iter()
        .filter(|s| s.op.as_deref().is_some_and(|op| op.starts_with("db")))
        .count();
    let json = serde_json::to_string(t)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    let inserted = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO transactions (event_id, trace_id, name, op, status,
                http_status, is_error, timestamp, duration_us, span_count, query_count,
                release, environment, json)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )?
        .execute(params![
            t.event_id.to_string(),
            t.trace.trace_id.to_string(),
            t.name,
            t.trace.op.as_deref(),
            status,
            http_status,
            is_error(status, http_status),
            start.div_euclid(1000),
            duration.max(0),
            t.spans.len() as i64,
            queries as i64,
            t.release.as_deref(),
            t.environment.as_deref(),
            json,
        ])?;
    if inserted == 0 {
        return Ok(());
    }
    let id = tx.last_insert_rowid();
    let mut stmt = tx.prepare_cached(
        "INSERT INTO spans (transaction_id, seq, span_id, parent_span_id, op, description,
            status, start_us, duration_us, rows)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for (seq, span) in t.spans.iter().enumerate() {
        let span_start = micros(span.start_timestamp);
        stmt.execute(params![
            id,
            seq as i64,
            span.span_id.to_string(),
            span.parent_span_id.map(|p| p.to_string()),
            span.op.as_deref(),
            span.description.as_deref(),
            span.status.map(|s| s.as_str()),
            span_start - start,
            (micros(span.timestamp) - span_start).max(0),
            span_rows(span),
        ])?;
    }
    // Nothing more for the usual transaction, which has no problems.
    if !t.problems.is_empty() {
        let user = user_key(t.user.as_ref());
        for (seq, problem) in t.problems.iter().enumerate() {
            let occurrence = Occurrence {
                ts: start.div_euclid(1000),
                user: user.as_deref(),
                release: t.release.as_deref(),
                environment: t.environment.as_deref(),
                title: &problem.description,
                culprit: Some(&t.name),
                level: PROBLEM_LEVEL,
            };
            let (issue, created, regressed) = write_problem(tx, id, seq, problem, &occurrence)?;
            if let Some(outcomes) = outcomes.as_deref_mut() {
                outcomes.push(IssueOutcome {
                    issue: IssueId(issue),
                    record: index,
                    problem: Some(seq),
                    created,
                    regressed,
                });
            }
        }
    }
    Ok(())
}

/// The level of performance issues: worth a look, not a failure.
const PROBLEM_LEVEL: &str = "warning";

/// Writes one performance problem of the transaction `transaction_id`: its issue
/// (title the query at fault, culprit the route) and the occurrence linking the two.
/// Returns the issue's id, whether it is new, and whether it regressed.
fn write_problem(
    tx: &rusqlite::Transaction<'_>,
    transaction_id: i64,
    seq: usize,
    problem: &PerformanceProblem,
    o: &Occurrence<'_>,
) -> rusqlite::Result<(i64, bool, bool)> {
    let kind = problem.kind.as_str();
    let (fingerprint, existing) = find_issue(tx, &problem.fingerprint, kind)?;
    let issue_id = match existing {
        Some(id) => id,
        None => insert_issue(
            tx,
            &NewIssue {
                fingerprint: &fingerprint,
                kind,
                title: o.title,
                culprit: o.culprit,
                level: o.level,
                query_group: problem.query_group.as_deref(),
                ts: o.ts,
                release: o.release,
                environment: o.environment,
            },
        )?,
    };
    let (_, regressed) = record_occurrence(tx, issue_id, o)?;
    let span_ids = serde_json::to_string(&problem.span_ids)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    // A detector's total in milliseconds; NaN or negative is stored as 0 (`as`
    // saturates).
    let duration_us = ((problem.duration_ms * 1000.0).round() as i64).max(0);
    tx.prepare_cached(
        "INSERT INTO transaction_problems (transaction_id, seq, issue_id, description,
            count, duration_us, parent_span_id, span_ids)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        transaction_id,
        seq as i64,
        issue_id,
        problem.description,
        problem.count,
        duration_us,
        problem.parent_span_id.map(|p| p.to_string()),
        span_ids,
    ])?;
    Ok((issue_id, existing.is_none(), regressed))
}

// ---------------------------------------------------------------------------------------
// Retention

/// Deletes up to [`PRUNE_CHUNK`] of the oldest transactions over `max`, with their spans
/// and problem occurrences.
/// Ids only grow, so the excess is the lowest ids: a range at the start of the table.
fn trim_transactions(conn: &Connection, max: u64) -> rusqlite::Result<usize> {
    let count: i64 = conn
        .prepare_cached("SELECT count(*) FROM transactions")?
        .query_row([], |r| r.get(0))?;
    let excess = count - max as i64;
    if excess <= 0 {
        return Ok(0);
    }
    // Children first: the foreign keys are enforced.
    let last: i64 = conn
        .prepare_cached("SELECT id FROM transactions ORDER BY id LIMIT 1 OFFSET ?1")?
        .query_row([excess.min(PRUNE_CHUNK as i64) - 1], |r| r.get(0))?;
    conn.prepare_cached("DELETE FROM spans WHERE transaction_id <= ?1")?
        .execute([last])?;
    conn.prepare_cached("DELETE FROM transaction_problems WHERE transaction_id <= ?1")?
        .execute([last])?;
    let n = conn
        .prepare_cached("DELETE FROM transactions WHERE id <= ?1")?
        .execute([last])?;
    Ok(n)
}

/// Runs one chunk of work in its own short write transaction.
fn chunk<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    match f(conn) {
        Ok(v) => {
            conn.execute_batch("COMMIT")?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

fn ids(conn: &Connection, sql: &str, param: i64) -> rusqlite::Result<String> {
    let mut stmt = conn.prepare_cached(sql)?;
    let ids: Vec<i64> = stmt
        .query_map(params![param, PRUNE_CHUNK as i64], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(if ids.is_empty() {
        String::new()
    } else {
        serde_json::to_string(&ids).expect("integers serialize")
    })
}

/// The row ids of the transactions whose event ids are in `event_ids` (a JSON array),
/// as a JSON array.
fn ids_of_events(conn: &Connection, event_ids: &str) -> rusqlite::Result<String> {
    conn.prepare_cached(
        "SELECT coalesce(json_group_array(id), '[]') FROM transactions
         WHERE event_id IN (SELECT value FROM json_each(?1))",
    )?
    .query_row([event_ids], |r| r.get(0))
}

fn delete_transactions(conn: &Connection, ids: &str) -> rusqlite::Result<usize> {
    for table in ["spans", "transaction_problems"] {
        conn.prepare_cached(&format!(
            "DELETE FROM {table} WHERE transaction_id IN (SELECT value FROM json_each(?1))"
        ))?
        .execute([ids])?;
    }
    conn.prepare_cached("DELETE FROM transactions WHERE id IN (SELECT value FROM json_each(?1))")?
        .execute([ids])
}

fn prune(
    conn: &Connection,
    retention: &Retention,
    now: SystemTime,
    deadline: Option<Instant>,
    counters: &StoreCounters,
) -> rusqlite::Result<()> {
    let out_of_time = || deadline.is_some_and(|d| Instant::now() >= d);
    let cutoff = retention
        .max_age
        .map(|age| millis(now.checked_sub(age).unwrap_or(UNIX_EPOCH)));
    let mut deleted_any = false;

    // Transactions over the row limit (normally trimmed with each batch already).
    if let Some(max) = retention.max_transactions {
        loop {
            let n = chunk(conn, |c| trim_transactions(c, max))?;
            counters.pruned(0, n as u64, 0);
            deleted_any |= n > 0;
            if n < PRUNE_CHUNK || out_of_time() {
                break;
            }
        }
    }
    if out_of_time() {
        return Ok(());
    }

    if let Some(cutoff) = cutoff {
        // Transactions, events, then issues and releases not seen since the cutoff.
        loop {
            let n = chunk(conn, |c| {
                let ids = ids(
                    c,
                    "SELECT id FROM transactions WHERE timestamp < ?1 LIMIT ?2",
                    cutoff,
                )?;
                if ids.is_empty() {
                    return Ok(0);
                }
                delete_transactions(c, &ids)
            })?;
            counters.pruned(0, n as u64, 0);
            deleted_any |= n > 0;
            if n < PRUNE_CHUNK || out_of_time() {
                break;
            }
        }
        loop {
            let n = chunk(conn, |c| {
                let ids = ids(
                    c,
                    "SELECT id FROM events WHERE timestamp < ?1 LIMIT ?2",
                    cutoff,
                )?;
                if ids.is_empty() {
                    return Ok(0);
                }
                c.prepare_cached(
                    "DELETE FROM events WHERE id IN (SELECT value FROM json_each(?1))",
                )?
                .execute([&ids])
            })?;
            counters.pruned(n as u64, 0, 0);
            deleted_any |= n > 0;
            if n < PRUNE_CHUNK || out_of_time() {
                break;
            }
        }
        loop {
            let (events, issues) = chunk(conn, |c| {
                let ids = ids(
                    c,
                    "SELECT id FROM issues WHERE last_seen < ?1 LIMIT ?2",
                    cutoff,
                )?;
                if ids.is_empty() {
                    return Ok((0, 0));
                }
                let mut events = 0;
                // A performance issue's occurrences normally went with their
                // transactions above, unless that loop ran out of time.
                for table in [
                    "issue_users",
                    "issue_releases",
                    "issue_environments",
                    "transaction_problems",
                    "events",
                ] {
                    let n = c
                        .prepare_cached(&format!(
                            "DELETE FROM {table} WHERE issue_id IN (SELECT value FROM json_each(?1))"
                        ))?
                        .execute([&ids])?;
                    if table == "events" {
                        events = n;
                    }
                }
                let issues = c
                    .prepare_cached(
                        "DELETE FROM issues WHERE id IN (SELECT value FROM json_each(?1))",
                    )?
                    .execute([&ids])?;
                Ok((events, issues))
            })?;
            counters.pruned(events as u64, 0, issues as u64);
            deleted_any |= issues > 0;
            if issues < PRUNE_CHUNK || out_of_time() {
                break;
            }
        }
        chunk(conn, |c| {
            c.prepare_cached("DELETE FROM releases WHERE last_seen < ?1")?
                .execute([cutoff])
        })?;
    }

    if deleted_any {
        // Give pages back only when most of the file is free: pages on the free list
        // are reused by new rows anyway, so this only bounds a file that shrank for good.
        let (pages, free): (i64, i64) = conn.query_row(
            "SELECT page_count, freelist_count FROM pragma_page_count, pragma_freelist_count",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if free > 1024 && free * 2 > pages {
            incremental_vacuum(conn, Some(free - pages / 4))?;
        }
    }
    Ok(())
}

/// Gives up to `pages` free pages (all of them with `None`) back to the file system.
fn incremental_vacuum(conn: &Connection, pages: Option<i64>) -> rusqlite::Result<()> {
    let sql = match pages {
        Some(n) => format!("PRAGMA incremental_vacuum({n})"),
        None => "PRAGMA incremental_vacuum".to_owned(),
    };
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query([])?;
    while rows.next()?.is_some() {}
    Ok(())
}

/// The rows a query span returned, else changed, as the driver reported them.
fn span_rows(span: &backstop_core::Span) -> Option<i64> {
    ["db.rows_returned", "db.rows_affected"]
        .iter()
        .find_map(|key| span.data.get(*key)?.as_i64())
}
