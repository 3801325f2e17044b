//! How finished transactions reach the worker: in small batches, one per thread.
//!
//! A request thread appends its transaction to its own open batch (a mutex that only
//! it takes, but for the worker's visits) and sends the batch as one message once it
//! holds [`Handoff::size`] of them. The queue's shared cache lines, which the worker
//! keeps writing, are then touched once per batch instead of once per request, and
//! the records travel by value, with no allocation per transaction: batch lists go
//! round through a [`Pool`].
//!
//! A batch that is not full yet is not stranded: the worker collects every open batch
//! at each tick (so a transaction waits at most a tick longer), before a flush or a
//! shutdown, and when a late span arrives for a transaction it has not seen.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::pipeline::{PendingTransaction, Pool};

/// The open batch of one thread for one client.
pub(crate) struct OpenBatch {
    items: Mutex<Vec<PendingTransaction>>,
}

/// One client's batches: the open ones, and the emptied lists going round.
pub(crate) struct Handoff {
    /// Every thread's open batch. A thread registers its own on its first transaction;
    /// the worker drops the entries of threads that have ended, once emptied.
    open: Mutex<Vec<Arc<OpenBatch>>>,
    lists: Pool<Vec<PendingTransaction>>,
    /// How many transactions a batch holds before it is sent; 1 sends each at once.
    size: usize,
}

thread_local! {
    /// This thread's open batch for each client it has sent to. Entries of clients
    /// that are gone are dropped on the next lookup that misses.
    static OPEN: RefCell<Vec<(Weak<Handoff>, Arc<OpenBatch>)>> = const { RefCell::new(Vec::new()) };
}

impl Handoff {
    /// Batches of up to 16, smaller for small queues: a queue of `capacity` messages
    /// holds at most `capacity * size` transactions, so a small queue keeps small
    /// batches (and one of fewer than 256 places sends each transaction alone).
    pub(crate) fn new(queue_capacity: usize) -> Self {
        let size = (queue_capacity / 256).clamp(1, 16);
        Handoff {
            open: Mutex::new(Vec::new()),
            lists: Pool::new(1024),
            size,
        }
    }

    /// An empty list for a batch.
    fn list(&self) -> Vec<PendingTransaction> {
        self.lists
            .take()
            .unwrap_or_else(|| Vec::with_capacity(self.size))
    }

    /// Adds `transaction` to this thread's batch; returns the batch to send when full.
    pub(crate) fn push(
        self: &Arc<Self>,
        transaction: PendingTransaction,
    ) -> Option<Vec<PendingTransaction>> {
        if self.size <= 1 {
            let mut list = self.list();
            list.push(transaction);
            return Some(list);
        }
        let mut transaction = Some(transaction);
        let full = OPEN
            .try_with(|open| {
                let mut open = open.try_borrow_mut().ok()?;
                let batch = self.open_batch(&mut open);
                let mut items = batch.items.lock().unwrap_or_else(PoisonError::into_inner);
                items.extend(transaction.take());
                (items.len() >= self.size).then(|| std::mem::replace(&mut *items, self.list()))
            })
            .ok()
            .flatten();
        match transaction {
            // No thread-local to keep it in (the thread is ending): it goes alone.
            Some(transaction) => {
                let mut list = self.list();
                list.push(transaction);
                Some(list)
            }
            None => full,
        }
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
                    items: Mutex::new(Vec::with_capacity(self.size)),
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
    /// batches of threads that have ended.
    pub(crate) fn collect(&self, mut each: impl FnMut(PendingTransaction)) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        for batch in open.iter() {
            let mut items = batch.items.lock().unwrap_or_else(PoisonError::into_inner);
            for transaction in items.drain(..) {
                each(transaction);
            }
        }
        // Only the registry holds the batch of a thread that has ended.
        open.retain(|batch| Arc::strong_count(batch) > 1);
    }

    /// Takes back an emptied list.
    pub(crate) fn give_back(&self, list: Vec<PendingTransaction>) {
        if list.capacity() <= self.size * 2 {
            self.lists.give(list);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::Handoff;
    use crate::pipeline::{PendingTransaction, TraceLink, TxName};
    use crate::protocol::{EventId, SpanId, SpanStatus, TraceId};

    fn transaction() -> PendingTransaction {
        let now = crate::spans::now();
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
            data: Default::default(),
        }
    }

    #[test]
    fn a_batch_goes_out_when_full_and_the_rest_waits_to_be_collected() {
        let handoff = Arc::new(Handoff::new(4096));
        assert_eq!(handoff.size, 16);
        for _ in 0..15 {
            assert!(handoff.push(transaction()).is_none());
        }
        assert_eq!(handoff.push(transaction()).map(|b| b.len()), Some(16));
        for _ in 0..5 {
            assert!(handoff.push(transaction()).is_none());
        }
        let mut collected = 0;
        handoff.collect(|_| collected += 1);
        assert_eq!(collected, 5);
        handoff.collect(|_| collected += 1);
        assert_eq!(collected, 5, "collecting takes them out");
    }

    #[test]
    fn small_queues_send_each_transaction_at_once() {
        let handoff = Arc::new(Handoff::new(100));
        assert_eq!(handoff.push(transaction()).map(|b| b.len()), Some(1));
        let mut collected = 0;
        handoff.collect(|_| collected += 1);
        assert_eq!(collected, 0);
    }

    #[test]
    fn the_batch_of_a_thread_that_ended_is_collected_then_forgotten() {
        let handoff = Arc::new(Handoff::new(4096));
        let sender = handoff.clone();
        std::thread::spawn(move || assert!(sender.push(transaction()).is_none()))
            .join()
            .unwrap();
        let mut collected = 0;
        handoff.collect(|_| collected += 1);
        assert_eq!(collected, 1);
        assert!(handoff.open.lock().unwrap().is_empty());
    }
}
