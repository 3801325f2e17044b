//! Rule evaluation, on the worker thread right after the store commits a batch.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use backstop_core::{Level, Record};
use backstop_store::{
    AlertHistory, AlertStatus, BatchObserver, IssueCategory, IssueOutcome, NewAlert,
};

use crate::delivery::{About, Fired, Outbox, record};
use crate::notification::Action;
use crate::rule::{Occurrence, Rule, Trigger};

/// States untouched for this long past their window and interval are forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// What a rule remembers about one issue.
#[derive(Default)]
struct State {
    last_fired: Option<Instant>,
    /// A suppressed firing was recorded since the last one sent: one row per interval.
    suppression_recorded: bool,
    /// Arrival times within the window, at most the threshold + 1.
    times: VecDeque<Instant>,
    /// Users seen within the window, with when they were last seen.
    users: HashMap<String, Instant>,
    touched: Option<Instant>,
}

pub(crate) struct Evaluator {
    rules: Vec<Rule>,
    states: HashMap<(usize, i64), State>,
    outboxes: Vec<Outbox>,
    history: AlertHistory,
    last_sweep: Instant,
    /// Dropping it ends the metric rules' thread, so that thread lives as long as the
    /// store that owns this.
    metric_thread: Option<crossbeam_channel::Sender<()>>,
}

impl Evaluator {
    pub(crate) fn new(rules: Vec<Rule>, outboxes: Vec<Outbox>, history: AlertHistory) -> Evaluator {
        Evaluator {
            rules,
            states: HashMap::new(),
            outboxes,
            history,
            last_sweep: Instant::now(),
            metric_thread: None,
        }
    }

    pub(crate) fn stop_with(&mut self, metric_thread: crossbeam_channel::Sender<()>) {
        self.metric_thread = Some(metric_thread);
    }

    fn evaluate(&mut self, batch: &[Record], outcome: &IssueOutcome, now: Instant) {
        let Some(record) = batch.get(outcome.record) else {
            return;
        };
        let occurrence = match (record, outcome.problem) {
            (Record::Event(e), _) => Occurrence {
                environment: e.environment.as_deref(),
                level: e.level,
                category: IssueCategory::Error,
                route: e.transaction.as_deref().or(e.culprit.as_deref()),
            },
            (Record::Transaction(t), Some(_)) => Occurrence {
                environment: t.environment.as_deref(),
                level: Level::Warning,
                category: IssueCategory::Performance,
                route: Some(&t.name),
            },
            (Record::Transaction(_), None) => return,
        };
        for index in 0..self.rules.len() {
            let rule = &self.rules[index];
            if !rule.matches(&occurrence) {
                continue;
            }
            let key = (index, outcome.issue.0);
            let what = match &rule.trigger {
                Trigger::NewIssue if outcome.created => Some(match occurrence.category {
                    IssueCategory::Error => "New issue".to_owned(),
                    IssueCategory::Performance => "New performance issue".to_owned(),
                }),
                Trigger::Regression if outcome.regressed => {
                    Some("Regression: a resolved issue is back".to_owned())
                }
                Trigger::Frequency { count, window } => {
                    let state = self.states.entry(key).or_default();
                    state.touched = Some(now);
                    state.times.push_back(now);
                    while state
                        .times
                        .front()
                        .is_some_and(|t| now.duration_since(*t) > *window)
                        || state.times.len() as u64 > count.saturating_add(1)
                    {
                        state.times.pop_front();
                    }
                    (state.times.len() as u64 > *count).then(|| {
                        format!(
                            "More than {count} events in {}",
                            humantime::format_duration(*window)
                        )
                    })
                }
                Trigger::Users { count, window } => match outcome.user(batch) {
                    Some(user) => {
                        let state = self.states.entry(key).or_default();
                        state.touched = Some(now);
                        state.users.insert(user, now);
                        state
                            .users
                            .retain(|_, seen| now.duration_since(*seen) <= *window);
                        if state.users.len() as u64 > count.saturating_add(1) {
                            // Only "more than count" matters: forget the oldest.
                            if let Some(oldest) = state
                                .users
                                .iter()
                                .min_by_key(|(_, t)| **t)
                                .map(|(u, _)| u.clone())
                            {
                                state.users.remove(&oldest);
                            }
                        }
                        (state.users.len() as u64 > *count).then(|| {
                            format!(
                                "More than {count} users affected in {}",
                                humantime::format_duration(*window)
                            )
                        })
                    }
                    None => None,
                },
                _ => None,
            };
            if let Some(what) = what {
                self.fire(index, outcome, what, now);
            }
        }
    }

    fn fire(&mut self, index: usize, outcome: &IssueOutcome, what: String, now: Instant) {
        let rule = &self.rules[index];
        let state = self.states.entry((index, outcome.issue.0)).or_default();
        state.touched = Some(now);
        if state
            .last_fired
            .is_some_and(|t| now.duration_since(t) < rule.interval)
        {
            if !state.suppression_recorded {
                state.suppression_recorded = true;
                record(
                    &self.history,
                    NewAlert {
                        at: SystemTime::now(),
                        rule: rule.name.clone(),
                        channel: None,
                        status: AlertStatus::Suppressed,
                        issue: Some(outcome.issue),
                        title: what,
                        attempts: 0,
                        error: None,
                    },
                );
            }
            return;
        }
        state.last_fired = Some(now);
        state.suppression_recorded = false;
        let fired = Arc::new(Fired {
            action: Action::Trigger,
            rule: rule.name.clone(),
            trigger: rule.trigger.as_str(),
            what,
            about: About::Issue(outcome.issue),
            at: SystemTime::now(),
        });
        for outbox in &self.outboxes {
            outbox.push(&fired, &self.history);
        }
    }

    fn sweep(&mut self, now: Instant) {
        let rules = &self.rules;
        self.states.retain(|(index, _), state| {
            let rule = &rules[*index];
            let window = match rule.trigger {
                Trigger::Frequency { window, .. } | Trigger::Users { window, .. } => window,
                _ => Duration::ZERO,
            };
            let keep_for = window.max(rule.interval);
            state
                .touched
                .is_some_and(|t| now.duration_since(t) <= keep_for)
        });
        self.last_sweep = now;
    }
}

impl BatchObserver for Evaluator {
    fn written(&mut self, batch: &[Record], outcomes: &[IssueOutcome]) {
        if outcomes.is_empty() {
            return;
        }
        let now = Instant::now();
        for outcome in outcomes {
            self.evaluate(batch, outcome, now);
        }
        if now.duration_since(self.last_sweep) >= SWEEP_EVERY {
            self.sweep(now);
        }
    }
}
