//! Metric rules (route latency, error rate), judged on the alerts' own thread from the
//! store's route metrics every evaluation interval: an alert when a figure goes over
//! its threshold, a resolve when it is back under.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backstop_store::{AlertHistory, RouteQuery, RouteStats, StoreReader};
use crossbeam_channel::{RecvTimeoutError, Sender};

use crate::delivery::{About, Fired, Outbox};
use crate::notification::{Action, MetricSummary};
use crate::rule::{Rule, Trigger};

/// How often metric rules are judged unless told otherwise.
pub(crate) const DEFAULT_EVERY: Duration = Duration::from_secs(30);

/// The shortest evaluation interval: each round reads the store.
pub(crate) const MIN_EVERY: Duration = Duration::from_millis(100);

/// The longest evaluation interval: a metric alert fires within a minute of its
/// condition holding.
pub(crate) const MAX_EVERY: Duration = Duration::from_secs(60);

/// One figure a rule judges: a rule, in an environment (when it names some), on a
/// route (`None`: service-wide).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    rule: usize,
    environment: Option<String>,
    route: Option<String>,
}

/// A figure as read this round.
struct Judged {
    summary: MetricSummary,
    /// Enough requests, and the value over the threshold.
    over: bool,
    /// Fewer requests than the rule's minimum: nothing to judge.
    too_few: bool,
}

pub(crate) struct MetricWatch {
    rules: Vec<Rule>,
    reader: StoreReader,
    outboxes: Vec<Outbox>,
    history: AlertHistory,
    /// The figures over their threshold, alerted and not yet resolved.
    firing: HashSet<Key>,
}

impl MetricWatch {
    pub(crate) fn new(
        rules: Vec<Rule>,
        reader: StoreReader,
        outboxes: Vec<Outbox>,
        history: AlertHistory,
    ) -> MetricWatch {
        MetricWatch {
            rules,
            reader,
            outboxes,
            history,
            firing: HashSet::new(),
        }
    }

    /// Judges every metric rule every `every` until the returned sender is dropped
    /// (with the store that owns it).
    pub(crate) fn spawn(mut self, every: Duration) -> std::io::Result<Sender<()>> {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        thread::Builder::new()
            .name("backstop-alert-metrics".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    self.evaluate(SystemTime::now());
                }
            })?;
        Ok(stop)
    }

    /// One round: read the windows, judge each figure, send what changed.
    pub(crate) fn evaluate(&mut self, now: SystemTime) {
        // Whole minutes that have ended: the current one is still being counted.
        let end = UNIX_EPOCH
            + Duration::from_secs(
                now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() / 60 * 60,
            );
        let mut windows: HashMap<(Option<String>, u64), Option<Vec<RouteStats>>> = HashMap::new();
        let mut judged: HashMap<Key, Judged> = HashMap::new();
        // Rules and environments whose window could not be read keep their state.
        let mut unread: HashSet<(usize, Option<String>)> = HashSet::new();
        for (index, rule) in self.rules.iter().enumerate() {
            let window = match rule.trigger {
                Trigger::Latency { window, .. } | Trigger::ErrorRate { window, .. } => window,
                _ => continue,
            };
            let minutes = whole_minutes(window);
            let environments: Vec<Option<String>> = if rule.environments.is_empty() {
                vec![None]
            } else {
                rule.environments.iter().cloned().map(Some).collect()
            };
            for environment in environments {
                let routes = windows
                    .entry((environment.clone(), minutes))
                    .or_insert_with(|| {
                        let since = end
                            .checked_sub(Duration::from_secs(minutes.saturating_mul(60)))
                            .unwrap_or(UNIX_EPOCH);
                        let mut query = RouteQuery::new().since(since).until(end).limit(usize::MAX);
                        if let Some(environment) = &environment {
                            query = query.environment(environment.clone());
                        }
                        self.reader
                            .routes(&query)
                            .map_err(|error| {
                                tracing::warn!(target: "backstop", "metric alerts: route metrics not read: {error}");
                            })
                            .ok()
                    });
                let Some(routes) = routes else {
                    unread.insert((index, environment));
                    continue;
                };
                judge(index, rule, environment, minutes, routes, &mut judged);
            }
        }

        let mut changes: Vec<(Action, Key, Judged)> = Vec::new();
        for key in &self.firing {
            if unread.contains(&(key.rule, key.environment.clone())) {
                continue;
            }
            match judged.remove(key) {
                Some(figure) if figure.over => {}
                Some(figure) => changes.push((Action::Resolve, key.clone(), figure)),
                // The route had no request in the window: nothing is over the line.
                None => {
                    let figure = Judged {
                        summary: empty_summary(&self.rules[key.rule], key),
                        over: false,
                        too_few: true,
                    };
                    changes.push((Action::Resolve, key.clone(), figure));
                }
            }
        }
        // What is left was not firing.
        changes.extend(
            judged
                .into_iter()
                .filter(|(_, figure)| figure.over)
                .map(|(key, figure)| (Action::Trigger, key, figure)),
        );
        let at = SystemTime::now();
        for (action, key, figure) in changes {
            match action {
                Action::Trigger => self.firing.insert(key.clone()),
                _ => self.firing.remove(&key),
            };
            let rule = &self.rules[key.rule];
            let fired = Arc::new(Fired {
                action,
                rule: rule.name.clone(),
                trigger: rule.trigger.as_str(),
                what: what(action, &figure),
                about: About::Metric(figure.summary),
                at,
            });
            for outbox in &self.outboxes {
                outbox.push(&fired, &self.history);
            }
        }
    }
}

/// Judges `rule` over one environment's routes in the window.
fn judge(
    index: usize,
    rule: &Rule,
    environment: Option<String>,
    minutes: u64,
    routes: &[RouteStats],
    judged: &mut HashMap<Key, Judged>,
) {
    let taken = routes.iter().filter(|r| rule.takes_route(&r.name));
    let base = |route: Option<String>, requests: u64, errors: u64| MetricSummary {
        metric: "",
        route,
        routes: None,
        environment: environment.clone(),
        value: 0.0,
        threshold: 0.0,
        unit: "",
        window_secs: minutes.saturating_mul(60),
        requests,
        errors,
    };
    let mut put = |route: Option<String>, summary: MetricSummary, over: bool| {
        let too_few = summary.requests < rule.min_requests;
        let key = Key {
            rule: index,
            environment: environment.clone(),
            route,
        };
        let over = over && !too_few;
        judged.insert(
            key,
            Judged {
                summary,
                over,
                too_few,
            },
        );
    };
    match rule.trigger {
        Trigger::Latency { p95, .. } => {
            for r in taken {
                let summary = MetricSummary {
                    metric: "p95",
                    unit: "ms",
                    value: millis(r.p95),
                    threshold: millis(p95),
                    ..base(Some(r.name.clone()), r.count, r.errors)
                };
                put(Some(r.name.clone()), summary, r.p95 > p95);
            }
        }
        Trigger::ErrorRate {
            rate,
            service_wide: false,
            ..
        } => {
            for r in taken {
                let summary = MetricSummary {
                    metric: "error_rate",
                    unit: "fraction",
                    value: r.error_rate,
                    threshold: rate,
                    ..base(Some(r.name.clone()), r.count, r.errors)
                };
                put(Some(r.name.clone()), summary, r.error_rate > rate);
            }
        }
        Trigger::ErrorRate {
            rate,
            service_wide: true,
            ..
        } => {
            let (requests, errors) = taken.fold((0, 0), |(n, e), r| (n + r.count, e + r.errors));
            let value = if requests == 0 {
                0.0
            } else {
                errors as f64 / requests as f64
            };
            let summary = MetricSummary {
                metric: "error_rate",
                unit: "fraction",
                value,
                threshold: rate,
                routes: rule.route.clone(),
                ..base(None, requests, errors)
            };
            put(None, summary, value > rate);
        }
        _ => {}
    }
}

/// The figure of a route that had no request in the window.
fn empty_summary(rule: &Rule, key: &Key) -> MetricSummary {
    let (metric, unit, threshold, window) = match rule.trigger {
        Trigger::Latency { p95, window } => ("p95", "ms", millis(p95), window),
        Trigger::ErrorRate { rate, window, .. } => ("error_rate", "fraction", rate, window),
        _ => ("", "", 0.0, Duration::ZERO),
    };
    MetricSummary {
        metric,
        route: key.route.clone(),
        routes: if key.route.is_none() {
            rule.route.clone()
        } else {
            None
        },
        environment: key.environment.clone(),
        value: 0.0,
        threshold,
        unit,
        window_secs: whole_minutes(window).saturating_mul(60),
        requests: 0,
        errors: 0,
    }
}

/// A window in whole minutes, as the route metrics count them: at least one.
fn whole_minutes(window: Duration) -> u64 {
    window.as_secs().div_ceil(60).max(1)
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// What happened, in one line: `p95 812 ms, over 500 ms for 5m`.
fn what(action: Action, figure: &Judged) -> String {
    let m = &figure.summary;
    let window = humantime::format_duration(Duration::from_secs(m.window_secs));
    let name = if m.metric == "p95" {
        "p95"
    } else {
        "error rate"
    };
    match action {
        Action::Trigger if m.metric == "p95" => format!(
            "p95 {}, over {} for {window}",
            m.format(m.value),
            m.format(m.threshold)
        ),
        Action::Trigger => format!(
            "Error rate {}, over {} for {window}",
            m.format(m.value),
            m.format(m.threshold)
        ),
        _ if figure.too_few => format!(
            "Resolved: {} requests in {window}, too few to judge",
            m.requests
        ),
        _ => format!(
            "Resolved: {name} {}, back under {}",
            m.format(m.value),
            m.format(m.threshold)
        ),
    }
}
