//! What alerts need from the store: what each batch did to issues
//! ([`BatchObserver`]), the history of every alert ([`AlertHistory`]), and a way for
//! the dashboard to ask for a test notification ([`AlertTest`]).

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backstop_core::Record;
use rusqlite::{Connection, params};

use crate::error::StoreError;
use crate::reader::IssueId;
use crate::schema::{self, Mode};
use crate::store::millis;

/// Alert history rows kept; older ones are deleted as new ones arrive.
const HISTORY_KEPT: i64 = 10_000;

/// One occurrence of an issue in a committed batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssueOutcome {
    /// The issue the occurrence was counted on.
    pub issue: IssueId,
    /// The index of its record in the batch.
    pub record: usize,
    /// For a performance problem, its index in the transaction's `problems`.
    pub problem: Option<usize>,
    /// The occurrence created the issue.
    pub created: bool,
    /// The occurrence reopened a resolved issue.
    pub regressed: bool,
}

impl IssueOutcome {
    /// Who the occurrence affected (user id, else IP address), as the store counts
    /// users.
    pub fn user(&self, batch: &[Record]) -> Option<String> {
        let user = match batch.get(self.record)? {
            Record::Event(e) => e.user.as_ref(),
            Record::Transaction(t) => t.user.as_ref(),
        };
        crate::store::user_key(user)
    }
}

/// Told, on the worker thread right after a batch is committed, what it did to issues.
/// It runs on the write path: it should only look and hand off, never wait.
pub trait BatchObserver: Send + 'static {
    /// `outcomes` has one entry per issue occurrence written, in batch order.
    fn written(&mut self, batch: &[Record], outcomes: &[IssueOutcome]);
}

impl<F: FnMut(&[Record], &[IssueOutcome]) + Send + 'static> BatchObserver for F {
    fn written(&mut self, batch: &[Record], outcomes: &[IssueOutcome]) {
        self(batch, outcomes)
    }
}

/// Sends a test notification through every configured alert channel: what the
/// alerts crate lends the store it watches, so the dashboard's Alerts page can offer
/// its "send a test notification" button without knowing the channels.
pub trait AlertTest: Send + Sync + 'static {
    /// The configured channels' names.
    fn channels(&self) -> Vec<String>;

    /// Sends one test notification to each channel, with retries, and records each
    /// outcome in the alert history. Blocking: call it off the async threads.
    fn send(&self);
}

/// What became of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertStatus {
    /// The channel accepted it.
    Sent,
    /// Delivery failed after its retries, or the channel is stopped.
    Failed,
    /// The rule fired again within its action interval, so nothing was sent.
    Suppressed,
}

impl AlertStatus {
    /// `sent`, `failed` or `suppressed`, as stored.
    pub fn as_str(&self) -> &'static str {
        match self {
            AlertStatus::Sent => "sent",
            AlertStatus::Failed => "failed",
            AlertStatus::Suppressed => "suppressed",
        }
    }

    fn parse(s: &str) -> AlertStatus {
        match s {
            "sent" => AlertStatus::Sent,
            "failed" => AlertStatus::Failed,
            _ => AlertStatus::Suppressed,
        }
    }
}

impl fmt::Display for AlertStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An alert to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlert {
    /// When it fired.
    pub at: SystemTime,
    /// The rule's name (`new-issue`, `frequency`, `test`).
    pub rule: String,
    /// The channel's name; `None` for a suppressed alert (no channel was tried).
    pub channel: Option<String>,
    /// What became of it.
    pub status: AlertStatus,
    /// The issue it was about, if any.
    pub issue: Option<IssueId>,
    /// What the notification said in one line.
    pub title: String,
    /// Delivery attempts made.
    pub attempts: u32,
    /// Why it failed.
    pub error: Option<String>,
}

/// One alert in the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRecord {
    /// Its id; pages of history go by it (newest first).
    pub id: i64,
    /// The alert.
    pub alert: NewAlert,
}

/// The alert history in a store: written by alert delivery, read by the dashboard and
/// the CLI. Cheap to clone; it keeps one connection, opened on first use.
#[derive(Clone)]
pub struct AlertHistory {
    inner: Arc<HistoryInner>,
}

struct HistoryInner {
    path: PathBuf,
    busy_timeout: Duration,
    conn: Mutex<Option<Arc<Mutex<Connection>>>>,
}

impl fmt::Debug for AlertHistory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertHistory")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl AlertHistory {
    pub(crate) fn new(
        path: PathBuf,
        busy_timeout: Duration,
        memory: Option<Arc<Mutex<Connection>>>,
    ) -> AlertHistory {
        AlertHistory {
            inner: Arc::new(HistoryInner {
                path,
                busy_timeout,
                conn: Mutex::new(memory),
            }),
        }
    }

    /// The history of the store at `path`, which must exist (it is migrated if older).
    pub fn open(path: impl Into<PathBuf>) -> Result<AlertHistory, StoreError> {
        let path = path.into();
        if !path.exists() {
            return Err(StoreError::NotBackstop {
                reason: "the file does not exist".into(),
                path,
            });
        }
        let history = AlertHistory::new(path, Duration::from_secs(2), None);
        history.connection()?;
        Ok(history)
    }

    fn connection(&self) -> Result<Arc<Mutex<Connection>>, StoreError> {
        let mut slot = self
            .inner
            .conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(conn) = &*slot {
            return Ok(conn.clone());
        }
        let conn = schema::open(&self.inner.path, Mode::Write, self.inner.busy_timeout, None)?;
        let conn = Arc::new(Mutex::new(conn));
        *slot = Some(conn.clone());
        Ok(conn)
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.inner.path.clone(),
            source,
        }
    }

    /// Records an alert and returns its id. The oldest rows beyond 10,000 go.
    pub fn record(&self, alert: &NewAlert) -> Result<i64, StoreError> {
        let conn = self.connection()?;
        let conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
        let result = (|| {
            conn.prepare_cached(
                "INSERT INTO alert_history (at, rule, channel, status, issue_id, title, attempts, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                millis(alert.at),
                alert.rule,
                alert.channel,
                alert.status.as_str(),
                alert.issue.map(|i| i.0),
                alert.title,
                alert.attempts,
                alert.error,
            ])?;
            let id = conn.last_insert_rowid();
            conn.prepare_cached("DELETE FROM alert_history WHERE id <= ?1")?
                .execute([id - HISTORY_KEPT])?;
            Ok(id)
        })();
        if result.is_err() {
            // A failed connection (file replaced, disk gone) is reopened next time.
            *self
                .inner
                .conn
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = None;
        }
        result.map_err(|e| self.err(e))
    }

    /// Up to `limit` alerts, newest first, older than the alert `before` if given (the
    /// last id of the previous page).
    pub fn history(
        &self,
        limit: usize,
        before: Option<i64>,
    ) -> Result<Vec<AlertRecord>, StoreError> {
        let conn = self.connection()?;
        let conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
        read_history(&conn, limit, before).map_err(|e| self.err(e))
    }
}

/// Up to `limit` alerts, newest first, older than the alert `before` if given.
pub(crate) fn read_history(
    conn: &Connection,
    limit: usize,
    before: Option<i64>,
) -> rusqlite::Result<Vec<AlertRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, at, rule, channel, status, issue_id, title, attempts, error
         FROM alert_history WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(
        params![
            before.unwrap_or(i64::MAX),
            limit.min(i64::MAX as usize) as i64
        ],
        |r| {
            let at: i64 = r.get(1)?;
            let status: String = r.get(4)?;
            Ok(AlertRecord {
                id: r.get(0)?,
                alert: NewAlert {
                    at: UNIX_EPOCH + Duration::from_millis(at.max(0) as u64),
                    rule: r.get(2)?,
                    channel: r.get(3)?,
                    status: AlertStatus::parse(&status),
                    issue: r.get::<_, Option<i64>>(5)?.map(IssueId),
                    title: r.get(6)?,
                    attempts: r.get(7)?,
                    error: r.get(8)?,
                },
            })
        },
    )?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use backstop_core::{Event, Level, Record};

    use super::*;
    use crate::SqliteStore;

    fn alert(title: &str, status: AlertStatus) -> NewAlert {
        NewAlert {
            at: SystemTime::now(),
            rule: "new-issue".into(),
            channel: Some("slack".into()),
            status,
            issue: Some(IssueId(1)),
            title: title.into(),
            attempts: 1,
            error: None,
        }
    }

    #[test]
    fn history_pages_newest_first_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("b.db")).unwrap();
        let history = store.alert_history();
        for i in 0..5 {
            history
                .record(&alert(&format!("alert {i}"), AlertStatus::Sent))
                .unwrap();
        }
        history
            .record(&alert("quiet", AlertStatus::Suppressed))
            .unwrap();
        let first = history.history(4, None).unwrap();
        let titles: Vec<_> = first.iter().map(|r| r.alert.title.as_str()).collect();
        assert_eq!(titles, ["quiet", "alert 4", "alert 3", "alert 2"]);
        assert_eq!(first[0].alert.status, AlertStatus::Suppressed);
        let next = history.history(4, Some(first[3].id)).unwrap();
        let titles: Vec<_> = next.iter().map(|r| r.alert.title.as_str()).collect();
        assert_eq!(titles, ["alert 1", "alert 0"]);
        // Another handle on the same file sees the same rows.
        let other = AlertHistory::open(dir.path().join("b.db")).unwrap();
        assert_eq!(other.history(100, None).unwrap().len(), 6);
    }

    #[test]
    fn the_observer_hears_new_and_repeated_issues_after_the_commit() {
        let mut store = SqliteStore::open(":memory:").unwrap();
        let (tx, rx) = mpsc::channel();
        store.observe(move |batch: &[Record], outcomes: &[IssueOutcome]| {
            assert!(outcomes.iter().all(|o| o.record < batch.len()));
            tx.send(outcomes.to_vec()).unwrap();
        });
        let event = |msg: &str| {
            let mut e = Event::new(Level::Error);
            e.message = Some(msg.into());
            // The worker resolves fingerprints; written directly, the event brings its own.
            e.fingerprint = vec![msg.into()];
            e.user = Some(backstop_core::User {
                id: Some("u1".into()),
                ..Default::default()
            });
            Record::Event(Box::new(e))
        };
        let batch = [
            event("payment failed"),
            event("payment failed"),
            event("disk full"),
        ];
        store.write(&batch).unwrap();
        let outcomes = rx.recv().unwrap();
        assert_eq!(outcomes.len(), 3);
        assert_eq!(
            outcomes.iter().map(|o| o.created).collect::<Vec<_>>(),
            [true, false, true]
        );
        assert_eq!(outcomes[0].issue, outcomes[1].issue);
        assert_eq!(outcomes[0].user(&batch).as_deref(), Some("id:u1"));
        assert!(outcomes.iter().all(|o| !o.regressed));
    }
}
