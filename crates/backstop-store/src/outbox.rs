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

/// How many pages the write-ahead log may hold before a push checkpoints it itself: the
/// fallback for when nobody calls [`Outbox::checkpoint`] (no sender, or one stuck in a
/// long send), so that the log stays bounded through any outage. About 40 MB of 4 KB
/// pages; the store's own connections keep their smaller automatic checkpoints.
const FALLBACK_CHECKPOINT_PAGES: u32 = 10_000;

/// From how many pages in the log a checkpoint makes sure that the next write starts it
/// over from the beginning (see [`Outbox::checkpoint`]).
const RESTART_PAGES: u64 = 1_000;

/// The outbox table of a store file, with its own three connections: a writer, for
/// [`push`](Outbox::push) and [`remove`](Outbox::remove), a reader, for
/// [`oldest`](Outbox::oldest) and [`len`](Outbox::len), and one for
/// [`checkpoint`](Outbox::checkpoint). The file is in WAL mode, so the reader runs
/// beside the writer: the sender reads its next items while a push is being written,
/// and a push never waits for a read. Cheap to clone: clones share the connections.
///
/// A push appends to the write-ahead log and does not copy the log back into the
/// database (a checkpoint) unless the log has grown past a large fallback bound: the
/// owner calls [`checkpoint`](Outbox::checkpoint) from elsewhere (the sender thread,
/// after it removed what it delivered), so that this copying is not paid for on the
/// push path.
#[derive(Clone)]
pub struct Outbox {
    path: PathBuf,
    limits: OutboxLimits,
    writer: Arc<Mutex<Writer>>,
    reader: Arc<Mutex<Connection>>,
    checkpointer: Arc<Mutex<Connection>>,
}

/// The writer's connection and what it knows of the outbox's size.
struct Writer {
    conn: Connection,
    /// The outbox's items and bytes after this connection's last commit, with the
    /// file's `data_version` then: while no other connection has written the file since
    /// (the version is unchanged), a push adds to them instead of counting the table.
    totals: Option<(OutboxLen, i64)>,
}

/// What a [`checkpoint`](Outbox::checkpoint) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// Whether it ran (`false`: another checkpoint of this outbox was under way).
    pub ran: bool,
    /// Pages in the write-ahead log.
    pub log_pages: u64,
    /// Of those, pages now copied into the database.
    pub checkpointed_pages: u64,
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
        Outbox::open_with(path.as_ref(), limits, FALLBACK_CHECKPOINT_PAGES)
    }

    fn open_with(
        path: &Path,
        limits: OutboxLimits,
        fallback_pages: u32,
    ) -> Result<Outbox, StoreError> {
        let path = path.to_owned();
        if schema::is_memory(&path) {
            return Err(StoreError::NotBackstop {
                path,
                reason: "an in-memory database cannot hold an outbox".into(),
            });
        }
        let writer = schema::open(&path, Mode::Write, Duration::from_secs(5), None)?;
        // Checkpoints are the checkpointer's job; a push does one only past the fallback.
        writer
            .pragma_update(None, "wal_autocheckpoint", fallback_pages)
            .map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
            })?;
        // Opened after the writer, which created or migrated the file.
        let reader = schema::open(&path, Mode::Read, Duration::from_secs(5), None)?;
        // A read-only connection cannot checkpoint; this one never writes a row.
        let checkpointer = schema::open(&path, Mode::Write, Duration::from_secs(5), None)?;
        Ok(Outbox {
            path,
            limits,
            writer: Arc::new(Mutex::new(Writer {
                conn: writer,
                totals: None,
            })),
            reader: Arc::new(Mutex::new(reader)),
            checkpointer: Arc::new(Mutex::new(checkpointer)),
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

    fn write(&self) -> std::sync::MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.reader.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `items` in one transaction, then evicts the oldest items while the outbox
    /// is over a bound, and returns what it evicted.
    pub fn push(&self, items: &[NewItem<'_>]) -> Result<Vec<Evicted>, StoreError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let err = self.err();
        let mut writer = self.write();
        let Writer {
            conn,
            totals: cached,
        } = &mut *writer;
        // Forgotten unless the commit succeeds.
        let known = cached.take();
        let tx = conn.transaction().map_err(&err)?;
        let created = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let mut added = OutboxLen::default();
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
                added.items += 1;
                added.bytes += item.payload.len() as u64;
            }
        }
        // The transaction holds the write lock now: the version cannot change under it.
        let version = data_version(&tx).map_err(&err)?;
        let len = match known {
            Some((len, at)) if at == version => OutboxLen {
                items: len.items + added.items,
                bytes: len.bytes + added.bytes,
            },
            _ => totals(&tx).map_err(&err)?,
        };
        let (evicted, len) = evict(&tx, self.limits, len).map_err(&err)?;
        tx.commit().map_err(&err)?;
        *cached = Some((len, version));
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
        let mut writer = self.write();
        self.delete(&mut writer, ids)
    }

    /// As [`remove`](Outbox::remove), unless the writer is busy (a push is being
    /// written): then removes nothing and returns `false` at once, so that the caller
    /// can carry on and try again later.
    pub fn try_remove(&self, ids: &[i64]) -> Result<bool, StoreError> {
        if ids.is_empty() {
            return Ok(true);
        }
        let mut writer = match self.writer.try_lock() {
            Ok(writer) => writer,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return Ok(false),
        };
        self.delete(&mut writer, ids).map(|()| true)
    }

    fn delete(&self, writer: &mut Writer, ids: &[i64]) -> Result<(), StoreError> {
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let err = self.err();
        let Writer {
            conn,
            totals: cached,
        } = writer;
        let known = cached.take();
        let tx = conn.transaction().map_err(&err)?;
        let mut removed = OutboxLen::default();
        {
            let mut delete = tx
                .prepare_cached("DELETE FROM outbox WHERE id BETWEEN ?1 AND ?2 RETURNING size")
                .map_err(&err)?;
            for (first, last) in runs(&sorted) {
                let mut rows = delete.query([first, last]).map_err(&err)?;
                while let Some(row) = rows.next().map_err(&err)? {
                    removed.items += 1;
                    removed.bytes += row.get::<_, i64>(0).map_err(&err)?.max(0) as u64;
                }
            }
        }
        let version = data_version(&tx).map_err(&err)?;
        tx.commit().map_err(&err)?;
        if let Some((len, at)) = known
            && at == version
        {
            let len = OutboxLen {
                items: len.items.saturating_sub(removed.items),
                bytes: len.bytes.saturating_sub(removed.bytes),
            };
            *cached = Some((len, version));
        }
        Ok(())
    }

    /// Copies what the write-ahead log holds back into the database, as far as readers
    /// allow, without waiting for them (`PRAGMA wal_checkpoint(PASSIVE)`): a push
    /// leaves this to its caller's other thread (see [`Outbox`]). Returns at once,
    /// having done nothing, if another checkpoint of this outbox is under way.
    ///
    /// The log starts over from its beginning only when a write begins with all of it
    /// copied, and pushes and removals keep appending to it while the copy runs: when
    /// the log is long, the pages written meanwhile are copied again with this outbox's
    /// writer held (a short wait for a push, the bulk of the copy done), so that its
    /// next write restarts the log instead of the log growing to the fallback bound.
    pub fn checkpoint(&self) -> Result<Checkpoint, StoreError> {
        let conn = match self.checkpointer.try_lock() {
            Ok(conn) => conn,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return Ok(Checkpoint::default()),
        };
        let passive = || {
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok(Checkpoint {
                    ran: true,
                    log_pages: r.get::<_, i64>(1)?.max(0) as u64,
                    checkpointed_pages: r.get::<_, i64>(2)?.max(0) as u64,
                })
            })
            .map_err(self.err())
        };
        let done = passive()?;
        if done.log_pages < RESTART_PAGES {
            return Ok(done);
        }
        let _writer = self.write();
        passive()
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

/// The file's `PRAGMA data_version`: changes when another connection commits to it.
fn data_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("PRAGMA data_version")?
        .query_row([], |r| r.get(0))
}

/// How many items and bytes wait, from the `outbox_size` index alone.
fn totals(conn: &Connection) -> rusqlite::Result<OutboxLen> {
    conn.prepare_cached("SELECT count(*), coalesce(sum(size), 0) FROM outbox")?
        .query_row([], |r| {
            Ok(OutboxLen {
                items: r.get::<_, i64>(0)?.max(0) as u64,
                bytes: r.get::<_, i64>(1)?.max(0) as u64,
            })
        })
}

/// Deletes the oldest rows until both bounds hold; `len` is what the outbox holds now.
/// Returns what it deleted and what the outbox holds after.
fn evict(
    conn: &Connection,
    limits: OutboxLimits,
    mut len: OutboxLen,
) -> rusqlite::Result<(Vec<Evicted>, OutboxLen)> {
    let mut evicted = Vec::new();
    if len.items <= limits.max_items && len.bytes <= limits.max_bytes {
        return Ok((evicted, len));
    }
    let mut oldest = conn.prepare_cached("SELECT id, kind, spans, size FROM outbox ORDER BY id")?;
    let mut rows = oldest.query([])?;
    let mut last = None;
    let mut exhausted = false;
    while len.items > limits.max_items || len.bytes > limits.max_bytes {
        let Some(row) = rows.next()? else {
            exhausted = true;
            break;
        };
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
        conn.prepare_cached("DELETE FROM outbox WHERE id <= ?1")?
            .execute([last])?;
    }
    if exhausted {
        // Not what `len` said: count again rather than carry the error on.
        len = totals(conn)?;
    }
    Ok((evicted, len))
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

    /// The size of the write-ahead log file, 0 when there is none.
    fn wal_bytes(db: &std::path::Path) -> u64 {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        std::fs::metadata(wal).map_or(0, |m| m.len())
    }

    #[test]
    fn with_nobody_checkpointing_the_log_stays_bounded() {
        // An outage with no sender: pushes only, never a checkpoint() call. The
        // fallback (small here) keeps the log from growing with the outbox.
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("b.db");
        let fallback = 100;
        let outbox = super::Outbox::open_with(&db, OutboxLimits::default(), fallback).unwrap();
        let page: i64 = outbox
            .write()
            .conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap();
        let page = page as u64;
        let payload = vec![7u8; 3000];
        let batch = [item(&payload); 8];
        let pushes = 250;
        for _ in 0..pushes {
            outbox.push(&batch).unwrap();
        }
        assert_eq!(outbox.len().unwrap().items, pushes * 8, "nothing evicted");
        let wal = wal_bytes(&db);
        // Each 3 KB item takes a page of its own: the outbox holds 20 times the
        // fallback, the log at most the fallback and one push's pages (with the index
        // and interior pages they touch), each with its frame header.
        let pages = pushes * 8;
        let bound = 2 * u64::from(fallback) * (page + 24);
        assert!(
            pages * page > 5 * bound,
            "the test writes far past the bound"
        );
        assert!(wal <= bound, "log of {wal} bytes, over {bound}");
        drop(outbox);
        // Reopened, all of it is there.
        let outbox = Outbox::open(&db, OutboxLimits::default()).unwrap();
        assert_eq!(outbox.len().unwrap().items, pushes * 8);
    }

    #[test]
    fn a_checkpoint_copies_the_log_back_off_the_push_path() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("b.db");
        let outbox = Outbox::open(&db, OutboxLimits::default()).unwrap();
        let payload = vec![1u8; 3000];
        for _ in 0..20 {
            outbox.push(&[item(&payload); 10]).unwrap();
        }
        let done = outbox.checkpoint().unwrap();
        assert!(done.ran);
        assert!(
            done.log_pages >= 200,
            "{done:?}: the pushes did not checkpoint"
        );
        assert_eq!(done.checkpointed_pages, done.log_pages, "{done:?}");
        // A busy checkpointer is not waited for.
        let busy = outbox.checkpointer.lock().unwrap();
        assert!(!outbox.checkpoint().unwrap().ran);
        drop(busy);
        assert_eq!(outbox.len().unwrap().items, 200);
    }

    #[test]
    fn the_bounds_count_what_another_connection_wrote() {
        // Two writers of one file (two processes, or a restart beside a dying one):
        // each one's running count must see the other's pushes and removals.
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("b.db");
        let limits = OutboxLimits {
            max_items: 5,
            max_bytes: 1000,
        };
        let a = Outbox::open(&db, limits).unwrap();
        let b = Outbox::open(&db, limits).unwrap();
        a.push(&[item(&[0; 10]), item(&[1; 10]), item(&[2; 10])])
            .unwrap();
        b.push(&[item(&[3; 10]), item(&[4; 10])]).unwrap();
        let evicted = a.push(&[item(&[5; 10])]).unwrap();
        assert_eq!(evicted.len(), 1, "a counts b's two");
        assert_eq!(first_bytes(&a), [1, 2, 3, 4, 5]);
        let ids: Vec<i64> = b.oldest(3).unwrap().iter().map(|i| i.id).collect();
        b.remove(&ids).unwrap();
        assert!(
            a.push(&[item(&[6; 10])]).unwrap().is_empty(),
            "a sees b's removal"
        );
        assert_eq!(first_bytes(&a), [4, 5, 6]);
        a.remove(&[a.oldest(1).unwrap()[0].id]).unwrap();
        // a's own removal, counted without a recount.
        let evicted = a.push(&[item(&[7; 985])]).unwrap();
        assert_eq!(evicted.len(), 1, "bytes: 10 + 10 + 985 is over 1000");
        assert_eq!(first_bytes(&a), [6, 7]);
        assert_eq!(
            a.len().unwrap(),
            super::OutboxLen {
                items: 2,
                bytes: 995
            }
        );
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
