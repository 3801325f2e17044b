//! Where items wait for the sender: the store's outbox, or a bounded queue in memory.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use backstop_store::{Evicted, NewItem, Outbox, OutboxItem, OutboxLen, OutboxLimits, StoreError};

use crate::envelope::Item;

/// The default bounds of the in-memory queue: what a process may lose when it dies.
pub const MEMORY_LIMITS: OutboxLimits = OutboxLimits {
    max_items: 10_000,
    max_bytes: 100 * 1000 * 1000,
};

#[derive(Clone, Debug)]
pub(crate) enum Queue {
    Outbox(Outbox),
    Memory(Arc<MemoryQueue>),
}

impl Queue {
    pub(crate) fn memory(limits: OutboxLimits) -> Queue {
        Queue::Memory(Arc::new(MemoryQueue {
            limits,
            state: Mutex::new(MemoryState::default()),
        }))
    }

    /// Adds `items` (taken, so that the memory queue keeps their payloads without a
    /// copy); returns what the bounds evicted.
    pub(crate) fn push(&self, items: Vec<Item>) -> Result<Vec<Evicted>, StoreError> {
        match self {
            Queue::Outbox(outbox) => {
                let new: Vec<NewItem<'_>> = items
                    .iter()
                    .map(|item| NewItem {
                        kind: item.kind.item_type(),
                        event_id: &item.event_id,
                        spans: item.spans,
                        payload: &item.payload,
                    })
                    .collect();
                outbox.push(&new)
            }
            Queue::Memory(memory) => Ok(memory.push(items)),
        }
    }

    /// Up to `n` items, oldest first; shared, so that the memory queue copies no
    /// payload.
    pub(crate) fn oldest(&self, n: usize) -> Result<Vec<Arc<OutboxItem>>, StoreError> {
        match self {
            Queue::Outbox(outbox) => Ok(outbox.oldest(n)?.into_iter().map(Arc::new).collect()),
            Queue::Memory(memory) => Ok(memory.oldest(n)),
        }
    }

    pub(crate) fn remove(&self, ids: &[i64]) -> Result<(), StoreError> {
        match self {
            Queue::Outbox(outbox) => outbox.remove(ids),
            Queue::Memory(memory) => {
                memory.remove(ids);
                Ok(())
            }
        }
    }

    /// As [`remove`](Queue::remove), unless the outbox's writer is busy with a push:
    /// then `false`, at once.
    pub(crate) fn try_remove(&self, ids: &[i64]) -> Result<bool, StoreError> {
        match self {
            Queue::Outbox(outbox) => outbox.try_remove(ids),
            Queue::Memory(memory) => {
                memory.remove(ids);
                Ok(true)
            }
        }
    }

    /// Copies the outbox's write-ahead log back into its database, off the push path
    /// (a push leaves it to the sender); nothing for the memory queue.
    pub(crate) fn checkpoint(&self) -> Result<(), StoreError> {
        match self {
            Queue::Outbox(outbox) => outbox.checkpoint().map(drop),
            Queue::Memory(_) => Ok(()),
        }
    }

    pub(crate) fn len(&self) -> OutboxLen {
        match self {
            Queue::Outbox(outbox) => outbox.len().unwrap_or_default(),
            Queue::Memory(memory) => memory.len(),
        }
    }

    pub(crate) fn is_durable(&self) -> bool {
        matches!(self, Queue::Outbox(_))
    }
}

#[derive(Debug)]
pub(crate) struct MemoryQueue {
    limits: OutboxLimits,
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    items: VecDeque<Arc<OutboxItem>>,
    bytes: u64,
    next_id: i64,
}

impl MemoryQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, items: Vec<Item>) -> Vec<Evicted> {
        let mut state = self.lock();
        for item in items {
            state.next_id += 1;
            let id = state.next_id;
            state.bytes += item.payload.len() as u64;
            state.items.push_back(Arc::new(OutboxItem {
                id,
                kind: item.kind.item_type().to_owned(),
                event_id: item.event_id,
                spans: item.spans,
                payload: item.payload,
            }));
        }
        let mut evicted = Vec::new();
        while state.items.len() as u64 > self.limits.max_items
            || state.bytes > self.limits.max_bytes
        {
            let Some(oldest) = state.items.pop_front() else {
                break;
            };
            state.bytes -= oldest.payload.len() as u64;
            evicted.push(Evicted {
                kind: oldest.kind.clone(),
                spans: oldest.spans,
            });
        }
        evicted
    }

    fn oldest(&self, n: usize) -> Vec<Arc<OutboxItem>> {
        let state = self.lock();
        state.items.iter().take(n).cloned().collect()
    }

    fn remove(&self, ids: &[i64]) {
        let mut state = self.lock();
        // The sender removes what it took from the front, mostly in order: the front
        // first, else a short scan.
        for id in ids {
            if state.items.front().is_some_and(|i| i.id == *id) {
                if let Some(item) = state.items.pop_front() {
                    state.bytes -= item.payload.len() as u64;
                }
            } else if let Some(at) = state.items.iter().position(|i| i.id == *id)
                && let Some(item) = state.items.remove(at)
            {
                state.bytes -= item.payload.len() as u64;
            }
        }
    }

    fn len(&self) -> OutboxLen {
        let state = self.lock();
        OutboxLen {
            items: state.items.len() as u64,
            bytes: state.bytes,
        }
    }
}
