//! The export outbox: items waiting for delivery to another service, in the store's
//! own file, so they survive an outage of that service and a restart of this process.
//!
//! The outbox is bounded by a number of items and a number of payload bytes; pushing
//! past either bound evicts the oldest items, which [`Outbox::push`] returns so the
//! caller can count them. Delivery is at least once: an item leaves the outbox only
//! when [`Outbox::remove`] is called for it, after it was delivered (or given up on).
//!
//! ```
//! use backstop_store::{NewItem, Outbox, OutboxLimits};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let outbox = Outbox::open(dir.path().join("backstop.db"), OutboxLimits::default()).unwrap();
//! outbox
//!     .push(&[NewItem { kind: "event", event_id: "0a1b", spans: 0, payload: b"{}" }])
//!     .unwrap();
//! let waiting = outbox.oldest(10).unwrap();
//! assert_eq!(waiting[0].event_id, "0a1b");
//! outbox.remove(&[waiting[0].id]).unwrap();
//! assert_eq!(outbox.len().unwrap().items, 0);
//! ```

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, TryLockError};
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, params};

use crate::error::StoreError;
use crate::schema::{self, Mode};

/// How much the outbox holds before it evicts the oldest items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxLimits {
    /// The most items it keeps (default 10,000).
    pub max_items: u64,
    /// The most payload bytes it keeps (default 100 MB).
    pub max_bytes: u64,
}

impl Default for OutboxLimits {
    fn default() -> Self {
        OutboxLimits {
            max_items: 10_000,
            max_bytes: 100 * 1000 * 1000,
        }
    }
}

/// An item to add to the outbox.
#[derive(Debug, Clone, Copy)]
pub struct NewItem<'a> {
    /// What it is, as the caller names it (`event`, `transaction`).
    pub kind: &'a str,
    /// Its event id.
    pub event_id: &'a str,
    /// How many spans it carries (counted when it is dropped).
    pub spans: u64,
    /// What is delivered.
    pub payload: &'a [u8],
}

/// An item waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    /// Its place in the outbox: [`Outbox::remove`] takes it.
    pub id: i64,
    /// What it is (`event`, `transaction`).
    pub kind: String,
    /// Its event id.
    pub event_id: String,
    /// How many spans it carries.
    pub spans: u64,
    /// What is delivered.
    pub payload: Vec<u8>,
}

/// What an over-full outbox evicted, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evicted {
    /// What it was (`event`, `transaction`).
    pub kind: String,
    /// How many spans it carried.
    pub spans: u64,
}

/// How full the outbox is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxLen {
    /// Items waiting.
    pub items: u64,
    /// Their payload bytes.
    pub bytes: u64,
}

/// The outbox table of a store file, with its own two connections: a writer, for
/// [`push`](Outbox::push) and [`remove`](Outbox::remove), and a reader, for
/// [`oldest`](Outbox::oldest) and [`len`](Outbox::len). The file is in WAL mode, so the
/// reader runs beside the writer: the sender reads its next items while a push is being
/// written, and a push never waits for a read. Cheap to clone: clones share both
/// connections.
#[derive(Clone)]
pub struct Outbox {
    path: PathBuf,
    limits: OutboxLimits,
    writer: Arc<Mutex<Connection>>,
    reader: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("path", &self.path)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Outbox {
    /// Opens the outbox of the store at `path`, creating or upgrading the file as
    /// [`SqliteStore::open`](crate::SqliteStore::open) does. `:memory:` is refused: an
    /// outbox that a restart loses is no outbox.
    pub fn open(path: impl AsRef<Path>, limits: OutboxLimits) -> Result<Outbox, StoreError> {
        let path = path.as_ref().to_owned();
        if schema::is_memory(&path) {
            return Err(StoreError::NotBackstop {
                path,
                reason: "an in-memory database cannot hold an outbox".into(),
            });
        }
        let writer = schema::open(&path, Mode::Write, Duration::from_secs(5), None)?;
        // Opened after the writer, which created or migrated the file.
        let reader = schema::open(&path, Mode::Read, Duration::from_secs(5), None)?;
        Ok(Outbox {
            path,
            limits,
            writer: Arc::new(Mutex::new(writer)),
            reader: Arc::new(Mutex::new(reader)),
        })
    }

    /// The database path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bounds.
    pub fn limits(&self) -> OutboxLimits {
        self.limits
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn write(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.reader.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `items` in one transaction, then evicts the oldest items while the outbox
    /// is over a bound, and returns what it evicted.
    pub fn push(&self, items: &[NewItem<'_>]) -> Result<Vec<Evicted>, StoreError> {
        let err = self.err();
        let mut conn = self.write();
        let tx = conn.transaction().map_err(&err)?;
        let created = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO outbox (created, kind, event_id, spans, size, payload)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(&err)?;
            for item in items {
                insert
                    .execute(params![
                        created,
                        item.kind,
                        item.event_id,
                        item.spans as i64,
                        item.payload.len() as i64,
                        item.payload
                    ])
                    .map_err(&err)?;
            }
        }
        let evicted = evict(&tx, self.limits).map_err(&err)?;
        tx.commit().map_err(&err)?;
        Ok(evicted)
    }

    /// Up to `n` items, oldest first.
    pub fn oldest(&self, n: usize) -> Result<Vec<OutboxItem>, StoreError> {
        let err = self.err();
        let conn = self.read();
        let mut select = conn
            .prepare_cached(
                "SELECT id, kind, event_id, spans, payload FROM outbox ORDER BY id LIMIT ?1",
            )
            .map_err(&err)?;
        let rows = select
            .query_map([n as i64], |r| {
                Ok(OutboxItem {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    event_id: r.get(2)?,
                    spans: r.get::<_, i64>(3)?.max(0) as u64,
                    payload: r.get(4)?,
                })
            })
            .map_err(&err)?;
        rows.collect::<Result<_, _>>().map_err(&err)
    }

    /// Removes the items with these ids (delivered, or given up on), in one
    /// transaction. Ids no longer there (evicted meanwhile) are ignored.
    ///
    /// The ids are sorted and deleted a run of consecutive ids at a time (`BETWEEN`):
    /// a batch the sender took from the front is usually a single run, one statement.
    pub fn remove(&self, ids: &[i64]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.write();
        self.delete(&mut conn, ids)
    }

    /// As [`remove`](Outbox::remove), unless the writer is busy (a push is being
    /// written): then removes nothing and returns `false` at once, so that the caller
    /// can carry on and try again later.
    pub fn try_remove(&self, ids: &[i64]) -> Result<bool, StoreError> {
        if ids.is_empty() {
            return Ok(true);
        }
        let mut conn = match self.writer.try_lock() {
            Ok(conn) => conn,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return Ok(false),
        };
        self.delete(&mut conn, ids).map(|()| true)
    }

    fn delete(&self, conn: &mut Connection, ids: &[i64]) -> Result<(), StoreError> {
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let err = self.err();
        let tx = conn.transaction().map_err(&err)?;
        {
            let mut delete = tx
                .prepare_cached("DELETE FROM outbox WHERE id BETWEEN ?1 AND ?2")
                .map_err(&err)?;
            for (first, last) in runs(&sorted) {
                delete.execute([first, last]).map_err(&err)?;
            }
        }
        tx.commit().map_err(&err)
    }

    /// How many items and bytes wait.
    pub fn len(&self) -> Result<OutboxLen, StoreError> {
        let conn = self.read();
        totals(&conn).map_err(self.err())
    }
}

/// The runs of consecutive values in `sorted` (ascending, no duplicates), as first and
/// last: a run holds exactly the integers between its ends, so deleting the range
/// deletes those ids and no other.
fn runs(sorted: &[i64]) -> impl Iterator<Item = (i64, i64)> + '_ {
    let mut rest = sorted;
    std::iter::from_fn(move || {
        let (&first, _) = rest.split_first()?;
        let mut len = 1;
        while rest
            .get(len)
            .is_some_and(|&next| first.checked_add(len as i64) == Some(next))
        {
            len += 1;
        }
        let last = rest[len - 1];
        rest = &rest[len..];
        Some((first, last))
    })
}

fn totals(conn: &Connection) -> rusqlite::Result<OutboxLen> {
    conn.query_row(
        "SELECT count(*), coalesce(sum(size), 0) FROM outbox",
        [],
        |r| {
            Ok(OutboxLen {
                items: r.get::<_, i64>(0)?.max(0) as u64,
                bytes: r.get::<_, i64>(1)?.max(0) as u64,
            })
        },
    )
}

/// Deletes the oldest rows until both bounds hold.
fn evict(conn: &Connection, limits: OutboxLimits) -> rusqlite::Result<Vec<Evicted>> {
    let mut len = totals(conn)?;
    let mut evicted = Vec::new();
    if len.items <= limits.max_items && len.bytes <= limits.max_bytes {
        return Ok(evicted);
    }
    let mut oldest = conn.prepare_cached("SELECT id, kind, spans, size FROM outbox ORDER BY id")?;
    let mut rows = oldest.query([])?;
    let mut last = None;
    while len.items > limits.max_items || len.bytes > limits.max_bytes {
        let Some(row) = rows.next()? else { break };
        let id: i64 = row.get(0)?;
        let size: i64 = row.get(3)?;
        evicted.push(Evicted {
            kind: row.get(1)?,
            spans: row.get::<_, i64>(2)?.max(0) as u64,
        });
        len.items -= 1;
        len.bytes = len.bytes.saturating_sub(size.max(0) as u64);
        last = Some(id);
    }
    drop(rows);
    if let Some(last) = last {
        conn.execute("DELETE FROM outbox WHERE id <= ?1", [last])?;
    }
    Ok(evicted)
}

#[cfg(test)]
mod tests {
    use super::{NewItem, Outbox, OutboxLimits};

    fn item(payload: &[u8]) -> NewItem<'_> {
        NewItem {
            kind: "transaction",
            event_id: "e",
            spans: 3,
            payload,
        }
    }

    /// The first byte of each waiting item's payload, oldest first.
    fn first_bytes(outbox: &Outbox) -> Vec<u8> {
        let items = outbox.oldest(usize::MAX).unwrap();
        items.iter().map(|i| i.payload[0]).collect()
    }

    #[test]
    fn over_either_bound_the_oldest_go_first_and_are_returned() {
        let dir = tempfile::tempdir().unwrap();
        let limits = OutboxLimits {
            max_items: 3,
            max_bytes: 1000,
        };
        let outbox = Outbox::open(dir.path().join("b.db"), limits).unwrap();
        for i in 0..5u8 {
            outbox.push(&[item(&[i; 10])]).unwrap();
        }
        let left = first_bytes(&outbox);
        assert_eq!(left, [2, 3, 4]);
        let evicted = outbox.push(&[item(&[9; 995])]).unwrap();
        assert_eq!(evicted.len(), 3, "bytes bound: only the new one fits");
        assert_eq!(evicted[0].spans, 3);
        assert_eq!(outbox.len().unwrap().items, 1);
    }

    #[test]
    fn remove_takes_exactly_the_ids_given() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path().join("b.db"), OutboxLimits::default()).unwrap();
        for i in 0..10u8 {
            outbox.push(&[item(&[i])]).unwrap();
        }
        let ids: Vec<i64> = outbox.oldest(10).unwrap().iter().map(|i| i.id).collect();
        // Unsorted, with a duplicate, a gap and an id that is not there.
        outbox
            .remove(&[ids[3], ids[1], ids[2], ids[2], ids[6], ids[7], 1_000])
            .unwrap();
        let left = first_bytes(&outbox);
        assert_eq!(left, [0, 4, 5, 8, 9]);
        assert_eq!(outbox.len().unwrap().items, 5);
        outbox.remove(&[]).unwrap();
        assert_eq!(outbox.len().unwrap().items, 5);
    }

    #[test]
    fn runs_split_at_each_gap() {
        let runs: Vec<_> = super::runs(&[1, 2, 3, 5, 7, 8, i64::MAX - 1, i64::MAX]).collect();
        assert_eq!(runs, [(1, 3), (5, 5), (7, 8), (i64::MAX - 1, i64::MAX)]);
        assert_eq!(super::runs(&[]).count(), 0);
    }

    #[test]
    fn a_read_does_not_wait_for_an_open_write() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path().join("b.db"), OutboxLimits::default()).unwrap();
        outbox.push(&[item(b"first")]).unwrap();
        // The writer's lock held, as during a long push: the reader still answers.
        let writing = outbox.write();
        assert_eq!(outbox.oldest(5).unwrap()[0].payload, b"first");
        assert_eq!(outbox.len().unwrap().items, 1);
        let first = outbox.oldest(1).unwrap()[0].id;
        assert!(!outbox.try_remove(&[first]).unwrap(), "the writer is busy");
        drop(writing);
        assert!(outbox.try_remove(&[first]).unwrap());
        assert_eq!(outbox.len().unwrap().items, 0);
    }

    #[test]
    fn items_survive_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.db");
        Outbox::open(&path, OutboxLimits::default())
            .unwrap()
            .push(&[item(b"kept")])
            .unwrap();
        let outbox = Outbox::open(&path, OutboxLimits::default()).unwrap();
        assert_eq!(outbox.oldest(1).unwrap()[0].payload, b"kept");
        assert!(Outbox::open(":memory:", OutboxLimits::default()).is_err());
    }
}
