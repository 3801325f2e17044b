//! How finished transactions reach the worker: in small batches, one per thread.
//!
//! A request thread appends its transaction to its own open batch (a mutex that only
//! it takes, but for the worker's visits) and sends the batch as one message once it
//! holds [`Handoff::size`] of them. The queue's shared cache lines, which the worker
//! keeps writing, are then touched once per batch instead of once per request, and
//! the records travel by value, with no allocation per transaction: batch lists go
//! round through a [`Stack`].
//!
//! A request's context goes along as a copy: its facts (method, URI, headers) are
//! appended to the batch's bytes, which also go round, and the worker builds the
//! context from them when it takes the batch in. The adapter's copy is then freed on
//! the request thread that made it, so a request costs no block that another thread
//! frees, however far behind the worker is.
//!
//! A batch that is not full yet is not stranded: the worker collects every open batch
//! at each tick (so a transaction waits at most a tick longer), before a flush or a
//! shutdown, and when a late span arrives for a transaction it has not seen.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::http::CopiedRequest;
use crate::http::RequestSource;
use crate::pipeline::reuse::Stack;
use crate::scope::pending::{PendingTransaction, TxRequest};

/// Transactions on their way to the worker, with the bytes their request contexts
/// were copied into.
///
/// The only way out is [`Batch::take_each`], which builds each copied request
/// context from the bytes: none can leave without it.
#[derive(Default)]
pub(crate) struct Batch {
    items: Vec<PendingTransaction>,
    bytes: Vec<u8>,
}

impl Batch {
    /// Room for `size` transactions of typical requests.
    fn with_capacity(size: usize) -> Self {
        Batch {
            items: Vec::with_capacity(size),
            bytes: Vec::with_capacity(size * 512),
        }
    }

    /// Adds a transaction, copying its request's facts (`facts`, or its source's);
    /// returns the source it no longer needs (to drop once the lock is released).
    /// Facts too big to copy are built into the request context here.
    #[inline]
    fn add(
        &mut self,
        transaction: PendingTransaction,
        facts: Option<crate::http::RequestFacts<'_>>,
    ) -> Option<RequestSource> {
        // Pushed first and completed in place: a record is a few hundred bytes, and
        // each move is a copy.
        self.items.push(transaction);
        let transaction = self.items.last_mut()?;
        if let Some(facts) = facts {
            transaction.request = match CopiedRequest::copy(&facts, &mut self.bytes) {
                Some(copied) => TxRequest::Copied(copied),
                None => TxRequest::Built(Box::new(facts.build())),
            };
            return None;
        }
        let copied = transaction
            .trace
            .request_source
            .as_ref()
            .and_then(|source| source.facts())
            .and_then(|facts| CopiedRequest::copy(&facts, &mut self.bytes))?;
        transaction.request = TxRequest::Copied(copied);
        transaction.trace.request_source.take()
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Hands out each transaction, its request context built from the batch's bytes,
    /// and leaves the batch empty for reuse.
    pub(crate) fn take_each(&mut self, mut each: impl FnMut(PendingTransaction)) {
        for mut transaction in self.items.drain(..) {
            transaction.take_in(&self.bytes);
            each(transaction);
        }
        self.bytes.clear();
    }
}

/// The open batch of one thread for one client.
pub(crate) struct OpenBatch {
    items: Mutex<Batch>,
}

/// One client's batches: the open ones, and the emptied lists going round.
pub(crate) struct Handoff {
    /// Every thread's open batch. A thread registers its own on its first transaction;
    /// the worker drops the entries of threads that have ended, once emptied.
    open: Mutex<Vec<Arc<OpenBatch>>>,
    lists: Stack<Batch>,
    /// How many transactions a batch holds before it is sent; 1 sends each at once.
    size: usize,
}

thread_local! {
    /// This thread's open batch for each client it has sent to. Entries of clients
    /// that are gone are dropped on the next lookup that misses.
    static OPEN: RefCell<Vec<(Weak<Handoff>, Arc<OpenBatch>)>> = const { RefCell::new(Vec::new()) };
}

impl Handoff {
    /// A returned batch whose byte buffer grew past this is freed, not kept: the pool
    /// holds up to 1,024 batches, so this bounds what copied requests keep alive
    /// between bursts (16 MiB at most; a typical request copies under 1 KiB).
    const KEPT_BYTES: usize = 16 * 1024;

    /// Batches of up to 16, smaller for small queues: a queue of `capacity` messages
    /// holds at most `capacity * size` transactions, so a small queue keeps small
    /// batches (and one of fewer than 256 places sends each transaction alone).
    pub(crate) fn new(queue_capacity: usize) -> Self {
        let size = (queue_capacity / 256).clamp(1, 16);
        Handoff {
            open: Mutex::new(Vec::new()),
            lists: Stack::new(1024),
            size,
        }
    }

    /// An empty batch.
    fn list(&self) -> Batch {
        self.lists
            .take()
            .unwrap_or_else(|| Batch::with_capacity(self.size))
    }

    /// Adds `transaction` to this thread's batch; returns the batch to send when full.
    #[inline]
    pub(crate) fn push(
        self: &Arc<Self>,
        transaction: PendingTransaction,
        facts: Option<crate::http::RequestFacts<'_>>,
    ) -> Option<Batch> {
        if self.size <= 1 {
            let mut list = self.list();
            list.add(transaction, facts);
            return Some(list);
        }
        // The batch is looked up first and the transaction moved straight into it: a
        // record is a few hundred bytes, and each move is a copy.
        let batch = OPEN
            .try_with(|open| {
                let mut open = open.try_borrow_mut().ok()?;
                Some(self.open_batch(&mut open).clone())
            })
            .ok()
            .flatten();
        let Some(batch) = batch else {
            // No thread-local to keep it in (the thread is ending): it goes alone.
            let mut list = self.list();
            list.add(transaction, facts);
            return Some(list);
        };
        let mut items = batch.items.lock().unwrap_or_else(PoisonError::into_inner);
        let released = items.add(transaction, facts);
        let full = (items.len() >= self.size).then(|| std::mem::replace(&mut *items, self.list()));
        drop(items);
        drop(released);
        full
    }

    /// This thread's open batch for this client, registered on first use.
    fn open_batch<'a>(
        self: &Arc<Self>,
        open: &'a mut Vec<(Weak<Handoff>, Arc<OpenBatch>)>,
    ) -> &'a Arc<OpenBatch> {
        // A live `Weak` keeps its allocation, so an equal pointer is this client.
        let found = open
            .iter()
            .position(|(client, _)| std::ptr::eq(client.as_ptr(), Arc::as_ptr(self)));
        let index = match found {
            Some(index) => index,
            None => {
                open.retain(|(client, _)| client.strong_count() > 0);
                let batch = Arc::new(OpenBatch {
                    items: Mutex::new(Batch::with_capacity(self.size)),
                });
                self.open
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(batch.clone());
                open.push((Arc::downgrade(self), batch));
                open.len() - 1
            }
        };
        &open[index].1
    }

    /// Takes what every open batch holds (the worker calls this), and forgets the
    /// batches of threads that have ended. A batch is swapped for an empty one under
    /// its lock and taken in outside it, so a request thread never waits on the
    /// worker building request contexts.
    pub(crate) fn collect(&self, mut each: impl FnMut(PendingTransaction)) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        for batch in open.iter() {
            let mut items = batch.items.lock().unwrap_or_else(PoisonError::into_inner);
            if items.items.is_empty() {
                continue;
            }
            let mut taken = std::mem::replace(&mut *items, self.list());
            drop(items);
            taken.take_each(&mut each);
            self.give_back(taken);
        }
        // Only the registry holds the batch of a thread that has ended.
        open.retain(|batch| Arc::strong_count(batch) > 1);
    }

    /// Takes back a batch emptied by [`Batch::take_each`]. One that grew large (many
    /// or huge requests) is freed rather than kept.
    pub(crate) fn give_back(&self, list: Batch) {
        if list.items.capacity() <= self.size * 2 && list.bytes.capacity() <= Self::KEPT_BYTES {
            self.lists.give(list);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use super::Handoff;
    use crate::http::BuildRequest;
    use crate::protocol::{EventId, SpanId, SpanStatus, TraceId};
    use crate::scope::pending::{PendingTransaction, TraceLink, TxName, TxRequest};

    /// A finished transaction with nothing in it.
    pub(crate) fn transaction() -> PendingTransaction {
        let now = crate::scope::spans::now();
        PendingTransaction {
            event_id: EventId::new(),
            name: TxName::new("GET /"),
            started: now,
            ended: now,
            spans: Vec::new(),
            spans_dropped: 0,
            context: None,
            trace: TraceLink {
                trace_id: TraceId::new(),
                span_id: SpanId::new(),
                op: "http.server".into(),
                request_source: None,
            },
            parent_span_id: None,
            status: SpanStatus::Ok,
            http_status: Some(200),
            late_spans: false,
            data: Default::default(),
            request: Default::default(),
        }
    }

    #[test]
    fn a_batch_goes_out_when_full_and_the_rest_waits_to_be_collected() {
        let handoff = Arc::new(Handoff::new(4096));
        assert_eq!(handoff.size, 16);
        for _ in 0..15 {
            assert!(handoff.push(transaction(), None).is_none());
        }
        assert_eq!(handoff.push(transaction(), None).map(|b| b.len()), Some(16));
        for _ in 0..5 {
            assert!(handoff.push(transaction(), None).is_none());
        }
        let mut collected = 0;
        handoff.collect(|_| collected += 1);
        assert_eq!(collected, 5);
        handoff.collect(|_| collected += 1);
        assert_eq!(collected, 5, "collecting takes them out");
    }

    /// A request source with facts, as the adapters make them.
    struct Source {
        flat: crate::http::FlatRequest,
        body: Option<Arc<crate::http::BodyCapture>>,
    }

    impl crate::http::BuildRequest for Source {
        fn build_request(&self) -> crate::protocol::Request {
            self.facts().unwrap().build()
        }

        fn facts(&self) -> Option<crate::http::RequestFacts<'_>> {
            Some(crate::http::RequestFacts {
                method: "PATCH",
                scheme: "https",
                version: "HTTP/2.0",
                client_ip: Some("203.0.113.9".parse().unwrap()),
                flat: self.flat.view(),
                body: self.body.as_ref(),
            })
        }
    }

    fn source(header_bytes: usize) -> Arc<Source> {
        let body = Arc::new(crate::http::BodyCapture::new(64));
        body.push(br#"{"a":1}"#);
        let big = "v".repeat(header_bytes);
        let headers = [
            ("user-agent", b"probe/1".as_slice()),
            ("x-big", big.as_bytes()),
        ];
        Arc::new(Source {
            flat: crate::http::FlatRequest::new(
                &["", "", "", "/items/7?page=2"],
                b"req-42",
                || headers.iter().copied(),
            ),
            body: Some(body),
        })
    }

    fn with_source(source: &Arc<Source>) -> PendingTransaction {
        let mut pending = transaction();
        pending.trace.request_source = Some(source.clone());
        pending
    }

    #[test]
    fn a_request_travels_as_a_copy_and_its_source_stays_on_the_request_thread() {
        let handoff = Arc::new(Handoff::new(100));
        let source = source(10);
        let pending = with_source(&source);
        let mut batch = handoff.push(pending, None).unwrap();
        assert_eq!(
            Arc::strong_count(&source),
            1,
            "the batch let go of the source"
        );
        let mut taken = Vec::new();
        batch.take_each(|pending| taken.push(pending));
        assert!(batch.bytes.is_empty(), "the batch is left empty for reuse");
        let pending = taken.pop().unwrap();
        assert!(pending.trace.request_source.is_none());
        let TxRequest::Built(request) = pending.request else {
            panic!("the worker builds the context when it takes the batch in");
        };
        assert_eq!(
            *request,
            source.build_request(),
            "the copy builds what the source does"
        );
        assert_eq!(request.method.as_deref(), Some("PATCH"));
        assert_eq!(
            request.url.as_deref(),
            Some("https://localhost/items/7?page=2")
        );
        assert_eq!(request.query_string.as_deref(), Some("page=2"));
        assert_eq!(request.headers["user-agent"], "probe/1");
        assert_eq!(request.env["REQUEST_ID"], "req-42");
        assert_eq!(request.env["REMOTE_ADDR"], "203.0.113.9");
        assert_eq!(request.data.as_deref(), Some(r#"{"a":1}"#));
    }

    #[test]
    fn an_open_batch_collected_by_the_worker_hands_out_built_requests() {
        let handoff = Arc::new(Handoff::new(4096));
        let source = source(10);
        let pending = with_source(&source);
        assert!(
            handoff.push(pending, None).is_none(),
            "it waits in the open batch"
        );
        let mut requests = Vec::new();
        handoff.collect(|pending| requests.push(pending.request));
        let [TxRequest::Built(request)] = &requests[..] else {
            panic!("one transaction, its request built");
        };
        assert_eq!(**request, source.build_request());
    }

    #[test]
    fn a_huge_request_keeps_its_shared_source() {
        let handoff = Arc::new(Handoff::new(100));
        let source = source(20 * 1024);
        let pending = with_source(&source);
        let batch = handoff.push(pending, None).unwrap();
        assert!(batch.bytes.is_empty(), "nothing copied");
        assert!(matches!(batch.items[0].request, TxRequest::FromSource));
        assert_eq!(
            Arc::strong_count(&source),
            2,
            "the worker builds from the source"
        );
    }

    #[test]
    fn a_scopes_own_facts_are_copied_and_huge_ones_built_at_once() {
        let handoff = Arc::new(Handoff::new(100));
        for (header_bytes, copied) in [(10, true), (20 * 1024, false)] {
            let source = source(header_bytes);
            let facts = source.facts();
            let mut batch = handoff.push(transaction(), facts).unwrap();
            assert_eq!(!batch.bytes.is_empty(), copied);
            let expected = source.build_request();
            let mut taken = Vec::new();
            batch.take_each(|pending| taken.push(pending));
            let [pending] = &taken[..] else {
                panic!("one transaction");
            };
            let TxRequest::Built(request) = &pending.request else {
                panic!("built, from the copy or (too big to copy) at once");
            };
            assert_eq!(**request, expected);
        }
    }

    #[test]
    fn small_queues_send_each_transaction_at_once() {
        let handoff = Arc::new(Handoff::new(100));
        assert_eq!(handoff.push(transaction(), None).map(|b| b.len()), Some(1));
        let mut collected = 0;
        handoff.collect(|_| collected += 1);
        assert_eq!(collected, 0);
    }

    #[test]
    fn the_batch_of_a_thread_that_ended_is_collected_then_forgotten() {
        let handoff = Arc::new(Handoff::new(4096));
        let sender = handoff.clone();
        std::thread::spawn(move || assert!(sender.push(transaction(), None).is_none()))
            .join()
            .unwrap();
        let mut collected = 0;
        handoff.collect(|_| collected += 1);
        assert_eq!(collected, 1);
        assert!(handoff.open.lock().unwrap().is_empty());
    }
}
