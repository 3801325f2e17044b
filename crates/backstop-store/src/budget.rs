//! The keep budget: which sampled transactions the store keeps, per route and minute.
//!
//! Route metrics count every request, so the store need not keep every transaction
//! to know a route's traffic; it keeps the ones worth opening. Per route and minute:
//! every failed transaction up to [`KeepBudget::errors`], the first
//! [`KeepBudget::per_problem`] of each performance problem (by fingerprint), the
//! [`KeepBudget::slowest`] slowest, and a uniform sample of
//! [`KeepBudget::reservoir`]. So the write rate is bounded by the budget, not the
//! traffic.
//!
//! The decision is made as each transaction arrives, mostly before the worker
//! processes it ([`Sink::wants_transaction`](backstop_core::Sink::wants_transaction)):
//! a transaction that is not an error, not among the slowest so far, not picked for
//! the sample, and that the detectors cannot find a problem in is never processed.
//! The slowest and the sample are kept as they stream in: a newcomer may push out an
//! earlier one (the fifth slowest so far; a sample slot, by reservoir sampling, which
//! keeps each of the minute's `n` transactions with the same chance `reservoir / n`),
//! and the store deletes what was pushed out unless another reason keeps it. That
//! costs a few deletes per minute (the sample's replacements grow with the logarithm
//! of the traffic), where deciding once per minute would hold a minute of
//! transactions in memory.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backstop_core::EventId;

/// How many sampled transactions the store keeps per route and minute. The rest
/// count as dropped by budget ([`StoreStats::transactions_over_budget`](crate::StoreStats::transactions_over_budget),
/// and [`KindStats::dropped_budget`](backstop_core::KindStats::dropped_budget) when
/// no other sink took them); route metrics count them all the same.
///
/// At most `errors + slowest + reservoir` transactions per route and minute, plus
/// `per_problem` for each distinct performance problem: 135 with the defaults and one
/// problem.
///
/// ```
/// use backstop_store::{KeepBudget, SqliteStore};
///
/// let store = SqliteStore::builder(":memory:")
///     .keep_budget(KeepBudget { reservoir: 50, ..KeepBudget::default() })
///     .open()
///     .unwrap();
/// # drop(store);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepBudget {
    /// Failed transactions (5xx, panics) kept, the first ones. Default 100.
    pub errors: usize,
    /// Transactions kept for each performance problem, the first ones. Default 10.
    pub per_problem: usize,
    /// The slowest transactions kept. Default 5.
    pub slowest: usize,
    /// A uniform sample of the minute's transactions. Default 20.
    pub reservoir: usize,
}

impl Default for KeepBudget {
    fn default() -> Self {
        KeepBudget {
            errors: 100,
            per_problem: 10,
            slowest: 5,
            reservoir: 20,
        }
    }
}

const ERROR: u8 = 1;
const PROBLEM: u8 = 2;
const SLOW: u8 = 4;
const SAMPLE: u8 = 8;
/// Kept for now only because the detectors may find a problem in it: settled when
/// the processed transaction arrives.
const MAYBE: u8 = 16;

/// One route's minute.
#[derive(Default)]
struct Minute {
    /// Transactions offered.
    seen: u64,
    errors: usize,
    /// Kept per problem fingerprint.
    problems: HashMap<String, usize>,
    /// The slowest so far, slowest first.
    slowest: Vec<(Duration, EventId)>,
    sample: Vec<EventId>,
    /// Why each kept transaction is kept.
    kept: HashMap<EventId, u8>,
}

impl Minute {
    /// Drops `reason` from `id`; returns whether nothing keeps it any more.
    fn release(&mut self, id: EventId, reason: u8) -> bool {
        match self.kept.get_mut(&id) {
            Some(reasons) => {
                *reasons &= !reason;
                if *reasons == 0 {
                    self.kept.remove(&id);
                    return true;
                }
                false
            }
            None => false,
        }
    }
}

/// A transaction as the budget sees it.
pub(crate) struct Offer<'a> {
    pub(crate) id: EventId,
    pub(crate) route: &'a str,
    pub(crate) at: SystemTime,
    pub(crate) duration: Duration,
    pub(crate) error: bool,
    /// Before processing: whether the detectors may find a problem.
    pub(crate) may_have_problem: bool,
}

/// The budget's state: the current minutes of each route.
pub(crate) struct Budget {
    limits: KeepBudget,
    /// Per route, its current minutes (two at most: this one and the one before),
    /// looked up by the route's `&str`, so an offer allocates nothing once its route
    /// has been seen.
    minutes: HashMap<String, Vec<(i64, Minute)>>,
    /// What was decided of each transaction offered before processing, until its
    /// record arrives: its minute when kept, `None` when declined (its record comes
    /// only if another sink wanted it). Records arrive in the batch right after their
    /// offer, so this is emptied after every batch.
    decided: HashMap<EventId, Option<(String, i64)>>,
    /// Transactions kept earlier and since pushed out, for the store to delete.
    pub(crate) evicted: Vec<EventId>,
    /// Transactions declined since last asked.
    pub(crate) declined: u64,
    rng: fastrand::Rng,
    newest: i64,
}

impl Budget {
    pub(crate) fn new(limits: KeepBudget) -> Self {
        Budget {
            limits,
            minutes: HashMap::new(),
            decided: HashMap::new(),
            evicted: Vec::new(),
            declined: 0,
            rng: fastrand::Rng::new(),
            newest: i64::MIN,
        }
    }

    /// Decides whether to keep a transaction, as it arrives: before processing (from
    /// the pipeline's summary) or, for a record no summary announced, with its
    /// problems known.
    pub(crate) fn offer(&mut self, offer: &Offer<'_>, problems: Option<&[&str]>) -> bool {
        let minute = minute_of(offer.at);
        self.forget_before(minute);
        let limits = self.limits;
        if !self.minutes.contains_key(offer.route) {
            self.minutes.insert(offer.route.to_owned(), Vec::new());
        }
        let minutes = self.minutes.get_mut(offer.route).expect("inserted above");
        let at = match minutes.iter().position(|(m, _)| *m == minute) {
            Some(at) => at,
            None => {
                minutes.push((minute, Minute::default()));
                minutes.len() - 1
            }
        };
        let state = &mut minutes[at].1;
        state.seen += 1;
        let mut reasons = 0;
        if offer.error && state.errors < limits.errors {
            state.errors += 1;
            reasons |= ERROR;
        }
        match problems {
            Some(problems) => {
                for fingerprint in problems {
                    let kept = state.problems.entry((*fingerprint).to_owned()).or_default();
                    if *kept < limits.per_problem {
                        *kept += 1;
                        reasons |= PROBLEM;
                    }
                }
            }
            None if offer.may_have_problem => reasons |= MAYBE,
            None => {}
        }
        let mut evicted = Vec::new();
        if limits.slowest > 0
            && (state.slowest.len() < limits.slowest
                || state
                    .slowest
                    .last()
                    .is_some_and(|(d, _)| offer.duration > *d))
        {
            let at = state.slowest.partition_point(|(d, _)| *d >= offer.duration);
            state.slowest.insert(at, (offer.duration, offer.id));
            reasons |= SLOW;
            if state.slowest.len() > limits.slowest
                && let Some((_, out)) = state.slowest.pop()
                && state.release(out, SLOW)
            {
                evicted.push(out);
            }
        }
        if limits.reservoir > 0 {
            if state.sample.len() < limits.reservoir {
                state.sample.push(offer.id);
                reasons |= SAMPLE;
            } else {
                let slot = self.rng.u64(..state.seen) as usize;
                if let Some(replaced) = state.sample.get_mut(slot) {
                    let out = std::mem::replace(replaced, offer.id);
                    reasons |= SAMPLE;
                    if state.release(out, SAMPLE) {
                        evicted.push(out);
                    }
                }
            }
        }
        // An earlier transaction pushed out by this one may be this one's own
        // predecessor in the same batch: the store skips writing those.
        self.evicted.extend(evicted);
        let keep = reasons != 0;
        if keep {
            state.kept.insert(offer.id, reasons);
        } else {
            self.declined += 1;
        }
        if problems.is_none() {
            self.decided
                .insert(offer.id, keep.then(|| (offer.route.to_owned(), minute)));
        }
        keep
    }

    /// Settles a processed transaction that was offered before processing: whether it
    /// is still kept, now that its problems are known. `None` when it was never
    /// offered (a record written directly).
    pub(crate) fn settle(&mut self, id: EventId, problems: &[&str]) -> Option<bool> {
        let Some(key) = self.decided.remove(&id)? else {
            // Declined when offered; another sink wanted it.
            return Some(false);
        };
        let limits = self.limits;
        let state = self
            .minutes
            .get_mut(&key.0)
            .and_then(|minutes| minutes.iter_mut().find(|(m, _)| *m == key.1))
            .map(|(_, state)| state);
        let Some(state) = state else {
            // Its minute is long gone: keep what was decided.
            return Some(true);
        };
        let Some(reasons) = state.kept.get(&id).copied() else {
            // Pushed out meanwhile.
            return Some(false);
        };
        let mut reasons = reasons & !MAYBE;
        for fingerprint in problems {
            let kept = state.problems.entry((*fingerprint).to_owned()).or_default();
            if *kept < limits.per_problem {
                *kept += 1;
                reasons |= PROBLEM;
            }
        }
        if reasons == 0 {
            state.kept.remove(&id);
            self.declined += 1;
            return Some(false);
        }
        state.kept.insert(id, reasons);
        Some(true)
    }

    /// Forgets every pick: after a failed write, what was kept is not known.
    pub(crate) fn reset(&mut self) {
        *self = Budget::new(self.limits);
    }

    /// Forgets the offers whose records did not come with the batch just written
    /// (declined, with no other sink wanting them; or dropped by `before_send`).
    pub(crate) fn batch_done(&mut self) {
        self.decided.clear();
        self.evicted.clear();
    }

    /// Forgets minutes older than the one before `minute`.
    fn forget_before(&mut self, minute: i64) {
        if minute <= self.newest {
            return;
        }
        self.newest = minute;
        self.minutes.retain(|_, minutes| {
            minutes.retain(|(m, _)| *m >= minute - 1);
            !minutes.is_empty()
        });
    }
}

fn minute_of(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() / 60) as i64,
        Err(_) => 0,
    }
}
