//! Backstop's alerts: the team hears about new issues, regressions, spikes, slow
//! routes and failure rates.
//!
//! Issue rules are evaluated on Backstop's worker thread right after the store commits
//! a batch, from what the batch did to issues (no query). Metric rules (route latency,
//! error rate) read the store's route metrics on a thread of their own, every
//! evaluation interval, and resolve when the figure is back under its threshold. When
//! a rule fires, each channel's own thread sends the notification with retries, and
//! records the outcome in the store's alert history. A request, or the worker, never
//! waits on a channel.
//!
//! ```no_run
//! use std::time::Duration;
//! use backstop_alerts::{Alerts, Channel, Rule};
//! use backstop_store::SqliteStore;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Channels from BACKSTOP_ALERT_* (a bad value is an error naming it), plus one in code.
//! let alerts = Alerts::from_env()?
//!     .notify(Channel::slack("https://hooks.slack.com/services/T0/B0/XXXX")?)
//!     .rule(Rule::new_issue())
//!     .rule(Rule::frequency(50, Duration::from_secs(60)).environment("production"))
//!     .rule(Rule::latency(Duration::from_millis(500), Duration::from_secs(300)));
//! let store = alerts.watch(SqliteStore::open("backstop.db")?);
//! let backstop = backstop_core::init(backstop_core::Options::new().sink(store))?;
//! # drop(backstop);
//! # Ok(())
//! # }
//! ```
//!
//! Rules, channels, the environment variables and the webhook's JSON body are
//! described in `docs/alerts.md`.

mod channel;
mod config;
mod delivery;
mod engine;
mod metric;
mod notification;
mod rule;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use backstop_store::{AlertHistory, AlertStatus, NewAlert, SqliteStore};

pub use channel::{Channel, Email, PAGERDUTY_EVENTS_URL, WebhookSecret};
pub use config::{ConfigError, DEFAULT_EMAIL_FROM, DEFAULT_SMTP_URL};
pub use delivery::RetryPolicy;
pub use notification::{Action, IssueSummary, MetricSummary, Notification};
pub use rule::{DEFAULT_INTERVAL, DEFAULT_MIN_REQUESTS, Rule, Trigger};

use crate::delivery::{Context, Courier, message_id, record};
use crate::engine::Evaluator;
use crate::metric::MetricWatch;
use crate::notification::rfc3339;

/// How long one attempt may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Alert configuration: rules and channels. Built in code, from the environment, or
/// both; attached to a store with [`watch`](Alerts::watch).
#[derive(Debug, Clone)]
#[must_use]
pub struct Alerts {
    rules: Vec<Rule>,
    channels: Vec<Channel>,
    dashboard_url: Option<String>,
    retry: RetryPolicy,
    timeout: Duration,
    evaluate_every: Duration,
}

impl Default for Alerts {
    fn default() -> Self {
        Alerts::new()
    }
}

impl Alerts {
    /// No rules and no channels yet.
    pub fn new() -> Alerts {
        Alerts {
            rules: Vec::new(),
            channels: Vec::new(),
            dashboard_url: None,
            retry: RetryPolicy::default(),
            timeout: TIMEOUT,
            evaluate_every: metric::DEFAULT_EVERY,
        }
    }

    /// Channels from `BACKSTOP_ALERT_SLACK_URL`, `BACKSTOP_ALERT_DISCORD_URL`,
    /// `BACKSTOP_ALERT_WEBHOOK_URL` + `BACKSTOP_ALERT_WEBHOOK_SECRET`,
    /// `BACKSTOP_ALERT_PAGERDUTY_KEY`, `BACKSTOP_ALERT_EMAIL_TO` (+
    /// `BACKSTOP_ALERT_EMAIL_FROM`, `BACKSTOP_SMTP_URL`), and links from
    /// `BACKSTOP_DASHBOARD_URL`. A bad value is an error naming its variable.
    pub fn from_env() -> Result<Alerts, ConfigError> {
        Alerts::from_vars(|name| std::env::var(name).ok())
    }

    /// As [`from_env`](Alerts::from_env), reading variables through `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Alerts, ConfigError> {
        let env = config::from_env(var)?;
        Ok(Alerts {
            channels: env.channels,
            dashboard_url: env.dashboard_url,
            ..Alerts::new()
        })
    }

    /// Adds a rule. With channels and no rule, [`Rule::defaults`] apply.
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Adds a channel.
    pub fn notify(mut self, channel: Channel) -> Self {
        self.channels.push(channel);
        self
    }

    /// The dashboard's public base URL (`https://app.example.com/_backstop`), for links.
    pub fn dashboard_url(mut self, url: impl Into<String>) -> Self {
        self.dashboard_url = Some(url.into().trim_end_matches('/').to_owned());
        self
    }

    /// How delivery retries (default: 4 attempts, 1 s doubling, at most 60 s apart).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// How long one attempt may take (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How often metric rules read the route metrics: default 30 s, kept between
    /// 100 ms and 60 s, so that a metric alert fires within a minute of its condition.
    pub fn evaluate_every(mut self, every: Duration) -> Self {
        self.evaluate_every = every.clamp(metric::MIN_EVERY, metric::MAX_EVERY);
        self
    }

    /// The channels configured.
    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }

    /// The rules that apply: those given, else the defaults.
    pub fn rules(&self) -> Vec<Rule> {
        if self.rules.is_empty() {
            Rule::defaults()
        } else {
            self.rules.clone()
        }
    }

    /// Evaluates the rules on every batch `store` writes, and starts one delivery
    /// thread per channel. With a metric rule, also starts the thread that judges the
    /// route metrics every [evaluation interval](Alerts::evaluate_every); it ends with
    /// the store. The store's readers (so the dashboard's Alerts page) can then send a
    /// test notification. With no channel, the store is returned untouched.
    pub fn watch(self, mut store: SqliteStore) -> SqliteStore {
        if self.channels.is_empty() {
            return store;
        }
        let rules = self.rules();
        let history = store.alert_history();
        if let Some(button) = self.test_button(history.clone()) {
            store.offer_alert_test(button);
        }
        let context = Arc::new(Context {
            sender: Courier::new(self.timeout, self.retry),
            reader: store.reader(),
            history: history.clone(),
            dashboard_url: self.dashboard_url,
        });
        let mut outboxes = Vec::with_capacity(self.channels.len());
        for channel in self.channels {
            let name = channel.name().to_owned();
            match delivery::spawn(channel, context.clone()) {
                Ok(outbox) => outboxes.push(outbox),
                Err(error) => {
                    tracing::error!(target: "backstop", channel = name, "cannot start the alert channel's thread: {error}")
                }
            }
        }
        let (metric_rules, issue_rules): (Vec<Rule>, Vec<Rule>) =
            rules.into_iter().partition(|r| r.trigger.is_metric());
        let mut evaluator = Evaluator::new(issue_rules, outboxes.clone(), history.clone());
        if !metric_rules.is_empty() {
            let watch = MetricWatch::new(metric_rules, store.reader(), outboxes, history);
            match watch.spawn(self.evaluate_every) {
                // The store's evaluator holds the thread's stop: it ends with the store.
                Ok(stop) => evaluator.stop_with(stop),
                Err(error) => {
                    tracing::error!(target: "backstop", "cannot start the metric alerts' thread: {error}")
                }
            }
        }
        store.observe(evaluator);
        store
    }

    /// What the dashboard's "send a test notification" button calls: every channel,
    /// one attempt each (someone is waiting on the page), each outcome recorded in
    /// `history`. `None` with no channel. [`watch`](Alerts::watch) lends it to the
    /// store's readers; a dashboard over a store file takes it with
    /// [`StoreReader::with_alert_test`](backstop_store::StoreReader::with_alert_test).
    pub fn test_button(&self, history: AlertHistory) -> Option<Arc<dyn backstop_store::AlertTest>> {
        if self.channels.is_empty() {
            return None;
        }
        let alerts = self.clone().retry(RetryPolicy {
            attempts: 1,
            ..self.retry
        });
        Some(Arc::new(TestButton { alerts, history }))
    }

    /// Sends a test notification now, on this thread, to the channel named `channel`
    /// (all of them with `None`), with retries. Each outcome is recorded in `history`
    /// when given. Returns one result per channel tried.
    pub fn send_test(
        &self,
        channel: Option<&str>,
        history: Option<&AlertHistory>,
    ) -> Result<Vec<TestResult>, UnknownChannel> {
        let chosen: Vec<&Channel> = self
            .channels
            .iter()
            .filter(|c| channel.is_none_or(|name| c.name() == name))
            .collect();
        if chosen.is_empty() {
            return Err(UnknownChannel {
                name: channel.map(str::to_owned),
                configured: self.channels.iter().map(|c| c.name().to_owned()).collect(),
            });
        }
        let courier = Courier::new(self.timeout, self.retry);
        let at = SystemTime::now();
        let n = Notification {
            id: message_id(),
            action: Action::Test,
            rule: "test".into(),
            trigger: "test".into(),
            what: "Test notification from Backstop".into(),
            issue: None,
            metric: None,
            url: self.dashboard_url.clone(),
            timestamp: rfc3339(at),
        };
        let mut results = Vec::with_capacity(chosen.len());
        for channel in chosen {
            let (attempts, result) = courier.deliver(channel, &n);
            let error = result.err().map(|f| match f {
                channel::Failure::Retry { reason, .. }
                | channel::Failure::Final(reason)
                | channel::Failure::Gone(reason) => reason,
            });
            if let Some(history) = history {
                record(
                    history,
                    NewAlert {
                        at,
                        rule: "test".into(),
                        channel: Some(channel.name().to_owned()),
                        status: if error.is_none() {
                            AlertStatus::Sent
                        } else {
                            AlertStatus::Failed
                        },
                        issue: None,
                        title: n.summary(),
                        attempts,
                        error: error.clone(),
                    },
                );
            }
            results.push(TestResult {
                channel: channel.name().to_owned(),
                attempts,
                error,
            });
        }
        Ok(results)
    }
}

/// The dashboard's "send a test notification": every channel, each outcome recorded
/// in the history, which the page shows.
struct TestButton {
    alerts: Alerts,
    history: AlertHistory,
}

impl backstop_store::AlertTest for TestButton {
    fn channels(&self) -> Vec<String> {
        let channels = self.alerts.channels.iter();
        channels.map(|c| c.name().to_owned()).collect()
    }

    fn send(&self) {
        // Only an unknown channel errs, and this asks for all of them.
        let _ = self.alerts.send_test(None, Some(&self.history));
    }
}

/// The outcome of a test notification on one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    /// The channel's name.
    pub channel: String,
    /// Attempts made.
    pub attempts: u32,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// No configured channel has the name asked for (or none is configured).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", match (&self.name, self.configured.is_empty()) {
    (_, true) => "no alert channel is configured (set BACKSTOP_ALERT_* variables; see docs/alerts.md)".to_owned(),
    (Some(name), false) => format!("no alert channel named {name:?} (configured: {})", self.configured.join(", ")),
    (None, false) => "no alert channel".to_owned(),
})]
pub struct UnknownChannel {
    /// The name asked for.
    pub name: Option<String>,
    /// The channels configured.
    pub configured: Vec<String>,
}
