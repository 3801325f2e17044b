//! The request threads' side of route metrics: each thread counts into its own
//! aggregate, which the worker drains.

use std::cell::RefCell;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::histogram::BUCKETS;

/// One request's figures, as its thread counts them.
#[derive(Clone, Copy)]
pub(crate) struct Sample {
    /// Minutes since the Unix epoch.
    pub(crate) minute: i64,
    pub(crate) micros: u64,
    pub(crate) error: bool,
    pub(crate) queries: u32,
}

/// One route's counts for one minute on one thread.
pub(crate) struct Slot {
    pub(crate) minute: i64,
    pub(crate) count: u64,
    pub(crate) errors: u64,
    pub(crate) queries: u64,
    /// Per bucket; allocated once, on the slot's first request, and kept.
    pub(crate) counts: Box<[u32]>,
}

impl Slot {
    fn new(minute: i64) -> Self {
        Slot {
            minute,
            count: 0,
            errors: 0,
            queries: 0,
            counts: vec![0; BUCKETS].into_boxed_slice(),
        }
    }

    #[inline]
    fn add(&mut self, sample: &Sample) {
        self.count += 1;
        self.errors += u64::from(sample.error);
        self.queries += u64::from(sample.queries);
        let bucket = &mut self.counts[super::histogram::bucket(sample.micros)];
        // A thread would need 4 billion requests in one bucket between two visits of
        // the worker (seconds apart) to overflow.
        *bucket = bucket.saturating_add(1);
    }

    /// Empties the slot for reuse, keeping its buckets' memory.
    pub(crate) fn clear(&mut self) {
        self.count = 0;
        self.errors = 0;
        self.queries = 0;
        self.counts.fill(0);
    }
}

/// A route's slots on one thread: the minute being counted, and the one before while
/// the worker has not taken it yet (it visits every few seconds). So a new minute
/// reuses a drained slot, with no allocation.
#[derive(Default)]
pub(crate) struct RouteSlots {
    pub(crate) slots: [Option<Slot>; 2],
}

/// What one thread has counted for one client since the worker's last visit.
#[derive(Default)]
pub(crate) struct ThreadRoutes {
    pub(crate) routes: hashbrown::HashMap<Box<str>, RouteSlots>,
    /// Slots pushed out when both of a route's were full of minutes the worker had not
    /// taken (it was stalled for over a minute). Rare; allocates.
    pub(crate) overflow: Vec<(Box<str>, Slot)>,
}

impl ThreadRoutes {
    /// The most routes one thread counts separately; later new names count under
    /// [`OTHER_ROUTES`](super::OTHER_ROUTES). Route names are patterns, so this is
    /// only reached by names made per request.
    const MAX_ROUTES: usize = 1000;

    #[inline]
    fn add(&mut self, route: &str, sample: &Sample) {
        let route = if self.routes.len() < Self::MAX_ROUTES || self.routes.contains_key(route) {
            route
        } else {
            super::OTHER_ROUTES
        };
        let slots = match self.routes.get_mut(route) {
            Some(slots) => slots,
            None => self.routes.entry(Box::from(route)).or_default(),
        };
        let minute = sample.minute;
        let index = match &slots.slots {
            [Some(a), _] if a.minute == minute => 0,
            [_, Some(b)] if b.minute == minute => 1,
            [None, _] => 0,
            [_, None] => 1,
            [Some(a), _] if a.count == 0 => 0,
            [_, Some(b)] if b.count == 0 => 1,
            [Some(a), Some(b)] => {
                // Both hold minutes the worker has not taken: the older one waits
                // aside.
                let older = usize::from(b.minute < a.minute);
                if let Some(slot) = slots.slots[older].take() {
                    self.overflow.push((Box::from(route), slot));
                }
                older
            }
        };
        let slot = slots.slots[index].get_or_insert_with(|| Slot::new(minute));
        if slot.count == 0 {
            slot.minute = minute;
        }
        slot.add(sample);
    }
}

/// One thread's aggregate for one client.
pub(crate) struct ThreadMetrics {
    /// Only this thread and the worker take the lock, the worker once per visit (every
    /// few seconds): uncontended, and never shared between request threads.
    pub(crate) routes: Mutex<ThreadRoutes>,
}

/// Every thread's aggregate for one client.
#[derive(Default)]
pub(crate) struct Threads {
    /// Registered by each thread on its first request; the worker forgets those of
    /// threads that have ended, once drained.
    pub(crate) all: Mutex<Vec<Arc<ThreadMetrics>>>,
    /// Which minute a request ended in, from the instant the scope read anyway.
    pub(crate) clock: WallClock,
}

/// The wall clock's minute, read from the spans' monotonic clock: a request thread
/// reads no second clock for its route metrics. The worker sets the two clocks against
/// each other again at every visit, so a step or drift of the wall clock is followed
/// within seconds.
pub(crate) struct WallClock {
    origin: quanta::Instant,
    /// Nanoseconds since the Unix epoch at `origin`, as last measured.
    unix_at_origin: AtomicI64,
}

impl Default for WallClock {
    fn default() -> Self {
        let clock = WallClock {
            origin: quanta::Instant::now(),
            unix_at_origin: AtomicI64::new(0),
        };
        clock.resync();
        clock
    }
}

impl WallClock {
    /// Measures the wall clock at `origin` again (the worker).
    pub(crate) fn resync(&self) {
        let since_origin = quanta::Instant::now().saturating_duration_since(self.origin);
        let unix = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => nanos(d),
            Err(e) => -nanos(e.duration()),
        };
        self.unix_at_origin
            .store(unix - nanos(since_origin), Ordering::Relaxed);
    }

    /// Minutes since the Unix epoch at `at`.
    #[inline]
    pub(crate) fn minute(&self, at: quanta::Instant) -> i64 {
        let since_origin = nanos(at.saturating_duration_since(self.origin));
        let unix = self.unix_at_origin.load(Ordering::Relaxed) + since_origin;
        unix.div_euclid(60_000_000_000)
    }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

thread_local! {
    /// This thread's aggregate for each client it has counted for. Entries of clients
    /// that are gone are dropped on the next lookup that misses.
    static MINE: RefCell<Vec<(Weak<Threads>, Arc<ThreadMetrics>)>> = const { RefCell::new(Vec::new()) };
}

impl Threads {
    /// Counts one request of `route` in this thread's aggregate.
    #[inline]
    pub(crate) fn add(self: &Arc<Self>, route: &str, sample: Sample) {
        let counted = MINE.try_with(|mine| {
            let Ok(mut mine) = mine.try_borrow_mut() else {
                return false;
            };
            let metrics = self.mine(&mut mine);
            metrics
                .routes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .add(route, &sample);
            true
        });
        if counted != Ok(true) {
            // The thread is ending (its thread-locals are gone): count in an aggregate
            // of its own, which the worker drains like any other.
            let metrics = self.register();
            metrics
                .routes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .add(route, &sample);
        }
    }

    fn mine<'a>(
        self: &Arc<Self>,
        mine: &'a mut Vec<(Weak<Threads>, Arc<ThreadMetrics>)>,
    ) -> &'a Arc<ThreadMetrics> {
        // A live `Weak` keeps its allocation, so an equal pointer is this client.
        let found = mine
            .iter()
            .position(|(client, _)| std::ptr::eq(client.as_ptr(), Arc::as_ptr(self)));
        let index = match found {
            Some(index) => index,
            None => {
                mine.retain(|(client, _)| client.strong_count() > 0);
                mine.push((Arc::downgrade(self), self.register()));
                mine.len() - 1
            }
        };
        &mine[index].1
    }

    fn register(&self) -> Arc<ThreadMetrics> {
        let metrics = Arc::new(ThreadMetrics {
            routes: Mutex::new(ThreadRoutes::default()),
        });
        self.all
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(metrics.clone());
        metrics
    }

    /// Visits every thread's aggregate (the worker), and forgets those of threads that
    /// have ended once visited.
    pub(crate) fn drain(&self, mut each: impl FnMut(&mut ThreadRoutes)) {
        self.clock.resync();
        let mut all = self.all.lock().unwrap_or_else(PoisonError::into_inner);
        for metrics in all.iter() {
            each(
                &mut metrics
                    .routes
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            );
        }
        // Only the registry holds the aggregate of a thread that has ended.
        all.retain(|metrics| Arc::strong_count(metrics) > 1);
    }
}
