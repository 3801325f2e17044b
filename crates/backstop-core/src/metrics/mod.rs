//! Route metrics from every request, sampled or not: per route (the transaction name)
//! and minute, the request count, the errors (5xx and panics), a
//! [`DurationHistogram`] and the queries run.
//!
//! A request adds its figures when it finishes, on its own thread, to that thread's
//! aggregate (`local`): a map from route to two slots of fixed size, so after a
//! route's first request on a thread nothing is allocated, and no lock is shared
//! between request threads. The worker visits every thread's aggregate every few
//! seconds and at each flush ([`Merger`]), adds what it finds to the minutes it
//! holds, and hands the minutes that have ended to the sinks
//! ([`Sink::consume_metrics`](crate::Sink::consume_metrics)); a flush hands over the
//! current minute too, so far.
//!
//! What a sink receives is what was counted since the last hand-over: a minute may
//! come in several parts (a flush, a request that finished on the minute's edge), and
//! a sink adds each part to what it has of that minute.

mod histogram;
mod local;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use histogram::{DurationHistogram, InvalidHistogram};
pub(crate) use local::{Sample, Threads};

/// The name requests are counted under once a thread has counted 1,000 different
/// route names (names made per request, such as raw paths, would grow without bound).
pub const OTHER_ROUTES: &str = "<other routes>";

/// One route's requests in one minute (or the part of it counted since the last
/// hand-over), as sinks receive them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouteMinute {
    /// The route (the transaction name: `GET /users/{id}`).
    pub route: String,
    /// The minute's start.
    pub minute: SystemTime,
    /// The client's environment.
    pub environment: String,
    /// The client's release, if set.
    pub release: Option<String>,
    /// Requests that finished in the minute.
    pub count: u64,
    /// Those that failed: a 5xx or a panic (outside HTTP, a status other than `ok` or
    /// `cancelled`).
    pub errors: u64,
    /// Database queries they ran.
    pub queries: u64,
    /// Their durations.
    pub durations: DurationHistogram,
}

impl RouteMinute {
    /// An empty minute of `route`: `minute` is rounded down to a whole minute. The
    /// environment is `production` until set.
    pub fn new(route: impl Into<String>, minute: SystemTime) -> Self {
        RouteMinute {
            route: route.into(),
            minute: UNIX_EPOCH + Duration::from_secs(minute_of(minute).max(0) as u64 * 60),
            environment: "production".into(),
            release: None,
            count: 0,
            errors: 0,
            queries: 0,
            durations: DurationHistogram::new(),
        }
    }

    /// Sets the environment.
    #[must_use]
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = environment.into();
        self
    }

    /// Sets the release.
    #[must_use]
    pub fn release(mut self, release: impl Into<String>) -> Self {
        self.release = Some(release.into());
        self
    }

    /// Counts one request.
    pub fn record(&mut self, duration: Duration, error: bool, queries: u64) {
        self.count += 1;
        self.errors += u64::from(error);
        self.queries += queries;
        self.durations.record(duration);
    }

    /// Minutes since the Unix epoch.
    pub fn minute_index(&self) -> i64 {
        minute_of(self.minute)
    }
}

/// Minutes since the Unix epoch (negative before it).
pub(crate) fn minute_of(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() / 60) as i64,
        Err(e) => -(e.duration().as_secs().div_ceil(60) as i64),
    }
}

/// Whether a request that ended with `status` (and `http_status`) counts as an error.
pub(crate) fn is_error(status: crate::protocol::SpanStatus, http_status: Option<u16>) -> bool {
    use crate::protocol::SpanStatus;
    match http_status {
        Some(code) => code >= 500,
        None => !matches!(status, SpanStatus::Ok | SpanStatus::Cancelled),
    }
}

/// How often the worker visits the threads' aggregates.
pub(crate) const MERGE_EVERY: Duration = Duration::from_secs(2);

/// The worker's side: the minutes gathered from the threads, until they are handed
/// to the sinks.
pub(crate) struct Merger {
    threads: Arc<Threads>,
    environment: String,
    release: Option<String>,
    minutes: HashMap<(Box<str>, i64), RouteMinute>,
    merged: Instant,
}

impl Merger {
    /// A merger whose minutes are labelled with the client's environment and release.
    pub(crate) fn new(threads: Arc<Threads>, environment: String, release: Option<String>) -> Self {
        Merger {
            threads,
            environment,
            release,
            minutes: HashMap::new(),
            merged: Instant::now(),
        }
    }

    /// Whether a visit is due.
    pub(crate) fn due(&self) -> bool {
        self.merged.elapsed() >= MERGE_EVERY
    }

    /// Visits every thread's aggregate, then returns the minutes to hand over: those
    /// that have ended, or with `all`, every one (the current minute so far).
    pub(crate) fn merge(&mut self, all: bool) -> Vec<RouteMinute> {
        self.merged = Instant::now();
        let mut gathered = std::mem::take(&mut self.minutes);
        let mut take = |route: &str, slot: &mut local::Slot| {
            if slot.count == 0 {
                return;
            }
            let minute = gathered
                .entry((Box::from(route), slot.minute))
                .or_insert_with(|| {
                    let mut m = RouteMinute::new(
                        route,
                        UNIX_EPOCH + Duration::from_secs(slot.minute.max(0) as u64 * 60),
                    )
                    .environment(self.environment.as_str());
                    m.release = self.release.clone();
                    m
                });
            minute.count += slot.count;
            minute.errors += slot.errors;
            minute.queries += slot.queries;
            minute.durations.add_counts(&slot.counts);
            slot.clear();
        };
        self.threads.drain(|thread| {
            for (route, slots) in thread.routes.iter_mut() {
                for slot in slots.slots.iter_mut().flatten() {
                    take(route, slot);
                }
            }
            for (route, mut slot) in thread.overflow.drain(..) {
                take(&route, &mut slot);
            }
        });
        let now = minute_of(SystemTime::now());
        let mut out = Vec::new();
        for ((route, minute), figures) in gathered {
            if all || minute < now {
                out.push(figures);
            } else {
                self.minutes.insert((route, minute), figures);
            }
        }
        out.sort_by(|a, b| a.minute.cmp(&b.minute).then_with(|| a.route.cmp(&b.route)));
        out
    }
}
