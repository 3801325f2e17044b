//! Allocator-aware machinery: memory the request threads and the worker pass back and
//! forth instead of allocating it on one thread and freeing it on the other.
//!
//! With glibc, a block freed by a thread other than the one that allocated it takes the
//! owning arena's lock (and a large one makes it consolidate its heap), which the
//! request threads then wait on. So records travel to the worker in batches that go
//! round ([`handoff`]), emptied span lists go back for the next requests, what the
//! worker is done with is freed on a request thread ([`Retired`]). [`Reuse`] is the one
//! interface the client, the scope and the worker use; nothing else holds a pool.
//! (Statement texts, kept once per process, are the span records' own business:
//! `crate::scope::intern`.)

pub(crate) mod handoff;

use std::sync::{Arc, Mutex};

use crossbeam_channel::Receiver;

use crate::http::RequestFacts;
use crate::http::RequestSource;
use crate::pipeline::PendingTransaction;
use crate::scope::spans::{PendingSpan, Query};
use handoff::{Batch, Handoff};

/// One client's recycled memory: span lists, retired transaction parts, and the
/// hand-off's batches. Clones share it.
#[derive(Clone)]
pub(crate) struct Reuse {
    span_lists: Arc<SpanLists>,
    /// What the worker is done with of each transaction (its request source and query
    /// records). A request thread allocated them, and freeing them there (one
    /// transaction's worth per new sampled request) keeps glibc's per-thread caches
    /// warm, where a free on the worker would lock the request thread's arena and leave
    /// the blocks out of its reach.
    retired: Arc<Pool<Retired>>,
    /// How transactions travel to the worker: in per-thread batches.
    handoff: Arc<Handoff>,
}

impl Reuse {
    /// Pools sized for a queue of `queue_capacity` messages.
    pub(crate) fn new(queue_capacity: usize) -> Self {
        Reuse {
            span_lists: Arc::new(SpanLists::new(1024)),
            retired: Arc::new(Pool::new(1024)),
            handoff: Arc::new(Handoff::new(queue_capacity)),
        }
    }

    /// An empty span list for a request, with room for a few spans (request thread).
    #[inline]
    pub(crate) fn span_list(&self) -> Vec<PendingSpan> {
        self.span_lists.take()
    }

    /// Keeps a transaction's emptied span list for a later request (worker).
    pub(crate) fn recycle_span_list(&self, list: Vec<PendingSpan>) {
        self.span_lists.give(list);
    }

    /// Frees one transaction's worth of what the worker is done with, here, on a
    /// request thread.
    #[inline]
    pub(crate) fn free_retired(&self) {
        drop(self.retired.take());
    }

    /// Hands what the worker is done with of one transaction back to the request
    /// threads to free (worker).
    pub(crate) fn retire(
        &self,
        source: Option<RequestSource>,
        queries: impl IntoIterator<Item = Box<Query>>,
    ) {
        if let Some(retired) = Retired::new(source, queries) {
            self.retired.give(retired);
        }
    }

    /// Adds a finished transaction to this thread's batch; returns the batch to send
    /// when it is full (request thread).
    #[inline]
    pub(crate) fn hand_off(
        &self,
        transaction: PendingTransaction,
        facts: Option<RequestFacts<'_>>,
    ) -> Option<Batch> {
        self.handoff.push(transaction, facts)
    }

    /// Takes what every thread's open batch holds (worker).
    pub(crate) fn collect_open(&self, each: impl FnMut(PendingTransaction)) {
        self.handoff.collect(each);
    }

    /// Takes back a batch the worker has emptied.
    pub(crate) fn give_back(&self, list: Batch) {
        self.handoff.give_back(list);
    }
}

/// Allocations the worker hands back to the request threads for reuse.
///
/// A record is allocated on a request thread and freed on the worker; with glibc each
/// such cross-thread free takes the owning arena's lock (and a large one makes it
/// consolidate its heap), which the request threads then wait on. Handed back through
/// a bounded queue, the same blocks go round instead: in the steady state nothing is
/// allocated or freed. A full pool frees the surplus; an empty one allocates.
pub(crate) struct Pool<T> {
    tx: crossbeam_channel::Sender<T>,
    rx: Receiver<T>,
}

impl<T> Pool<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
        Pool { tx, rx }
    }

    pub(crate) fn take(&self) -> Option<T> {
        self.rx.try_recv().ok()
    }

    pub(crate) fn give(&self, item: T) {
        let _ = self.tx.try_send(item);
    }
}

/// Like [`Pool`], but the most recently returned item is the next one out: batch and
/// span lists, which a request thread writes a few hundred bytes into. Round-robin
/// through a full pool of them would hand out the coldest memory (a thousand lists are
/// megabytes, past the core's cache); the last one returned is still in a cache. One
/// short lock per take or give, once per batch or per request with spans.
pub(crate) struct Stack<T> {
    items: Mutex<Vec<T>>,
    capacity: usize,
}

impl<T> Stack<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        Stack {
            items: Mutex::new(Vec::new()),
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn take(&self) -> Option<T> {
        self.items
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop()
    }

    /// Keeps `item` if there is room; otherwise it is dropped, outside the lock.
    pub(crate) fn give(&self, item: T) {
        let surplus = {
            let mut items = self
                .items
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if items.len() < self.capacity {
                items.push(item);
                None
            } else {
                Some(item)
            }
        };
        drop(surplus);
    }
}

/// Emptied span lists, handed back by the worker for the next requests: a request's
/// list is freed on the worker, and for glibc such a cross-thread free of a 1 KiB
/// block is dear on both threads (it consolidates the heap); reused, it costs nothing.
struct SpanLists(Stack<Vec<PendingSpan>>);

impl SpanLists {
    /// Lists longer than this are freed rather than kept.
    const MAX_KEPT: usize = 64;

    fn new(lists: usize) -> Self {
        SpanLists(Stack::new(lists))
    }

    /// An empty list with room for a few spans.
    fn take(&self) -> Vec<PendingSpan> {
        self.0.take().unwrap_or_else(|| Vec::with_capacity(8))
    }

    /// Keeps an emptied list for a later request (when the pool has room).
    fn give(&self, mut list: Vec<PendingSpan>) {
        list.clear();
        if list.capacity() > 0 && list.capacity() <= Self::MAX_KEPT {
            self.0.give(list);
        }
    }
}

/// What the worker is done with of one transaction, handed back for a request thread
/// to free: the request source and the query records were allocated there, and glibc
/// keeps a freed block within the freeing thread's reach (its per-thread cache) when
/// the freeing thread is the one that allocates again.
///
/// It travels by value: a list allocated on the worker and freed on a request thread
/// would be the same problem the other way round.
pub(crate) struct Retired {
    pub(crate) source: Option<RequestSource>,
    /// The first [`Retired::QUERIES`] boxed query records (`db_span`'s and ORM spans';
    /// sqlx's statements are held inline and need none); the rest are freed on the
    /// worker.
    pub(crate) queries: [Option<Box<Query>>; Retired::QUERIES],
}

impl Retired {
    pub(crate) const QUERIES: usize = 8;

    /// Sources holding more than this are freed on the worker: the pool would keep
    /// them waiting until the next requests.
    pub(crate) const MAX_SOURCE_BYTES: usize = 8 * 1024;

    /// What `source` and `queries` leave for a request thread to free; `None` when
    /// nothing.
    pub(crate) fn new(
        source: Option<RequestSource>,
        queries: impl IntoIterator<Item = Box<Query>>,
    ) -> Option<Self> {
        let source = source.filter(|s| s.heap_bytes() <= Retired::MAX_SOURCE_BYTES);
        let mut retired = Retired {
            source,
            queries: [const { None }; Retired::QUERIES],
        };
        for (slot, query) in retired.queries.iter_mut().zip(queries) {
            *slot = Some(query);
        }
        (retired.source.is_some() || retired.queries[0].is_some()).then_some(retired)
    }
}

#[cfg(test)]
mod tests {
    use super::{Retired, Stack};

    struct Source(usize);

    impl crate::http::BuildRequest for Source {
        fn build_request(&self) -> crate::protocol::Request {
            crate::protocol::Request::default()
        }

        fn heap_bytes(&self) -> usize {
            self.0
        }
    }

    #[test]
    fn a_stack_hands_out_the_last_item_returned_and_keeps_at_most_its_capacity() {
        let stack = Stack::new(2);
        for list in [vec![1], vec![2], vec![3]] {
            stack.give(list);
        }
        assert_eq!(stack.take(), Some(vec![2]), "the most recent first");
        assert_eq!(stack.take(), Some(vec![1]));
        assert_eq!(stack.take(), None, "the third did not fit");
    }

    #[test]
    fn only_small_sources_wait_to_be_freed_on_a_request_thread() {
        let small: crate::http::RequestSource = std::sync::Arc::new(Source(2_000));
        let big: crate::http::RequestSource = std::sync::Arc::new(Source(64 * 1024));
        assert!(Retired::new(Some(small), []).unwrap().source.is_some());
        // A big one (a captured body, say) is freed at once; with no queries either,
        // nothing is left to hand back.
        assert!(Retired::new(Some(big), []).is_none());
        let queries = (0..40).map(|_| Box::<crate::scope::spans::Query>::default());
        let retired = Retired::new(None, queries).unwrap();
        assert!(
            retired.queries.iter().all(Option::is_some),
            "the first {} go back",
            Retired::QUERIES
        );
    }
}
