//! Delivery: one thread per channel, retries with backoff, the history of each alert.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, SystemTime};

use backstop_store::{AlertHistory, AlertStatus, IssueId, NewAlert, StoreReader};
use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::channel::{Channel, Failure};
use crate::notification::{
    Action, IssueSummary, MetricSummary, Notification, issue_url, rfc3339, route_url,
};

/// Alerts waiting per channel; more are recorded as failed rather than queued.
const QUEUE: usize = 256;

/// How delivery retries network errors, 5xx and 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (default 4).
    pub attempts: u32,
    /// The wait before the second attempt, doubled for each one after (default 1 s).
    pub backoff: Duration,
    /// The longest wait, also for a receiver's `Retry-After` (default 60 s).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            backoff: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        }
    }
}

/// How every channel is reached: one HTTP agent, the timeout and the retry policy.
#[derive(Clone)]
pub(crate) struct Courier {
    pub(crate) agent: ureq::Agent,
    pub(crate) timeout: Duration,
    pub(crate) retry: RetryPolicy,
}

impl Courier {
    pub(crate) fn new(timeout: Duration, retry: RetryPolicy) -> Courier {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            // Redirects are followed by hand, and only on the same host.
            .max_redirects(0)
            .http_status_as_error(false)
            .user_agent(concat!("backstop-alerts/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Courier {
            agent,
            timeout,
            retry,
        }
    }

    /// Sends with retries; returns the attempts made and the last failure.
    pub(crate) fn deliver(
        &self,
        channel: &Channel,
        n: &Notification,
    ) -> (u32, Result<(), Failure>) {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match channel.send(&self.agent, n, self.timeout) {
                Ok(()) => return (attempt, Ok(())),
                Err(Failure::Retry { after, .. }) if attempt < self.retry.attempts.max(1) => {
                    let backoff = self
                        .retry
                        .backoff
                        .saturating_mul(1 << (attempt - 1).min(16));
                    thread::sleep(after.unwrap_or(backoff).min(self.retry.max_delay));
                }
                Err(failure) => return (attempt, Err(failure)),
            }
        }
    }
}

/// An alert a rule fired (or a metric alert's resolve), before it is written for a
/// channel.
#[derive(Debug)]
pub(crate) struct Fired {
    pub(crate) action: Action,
    pub(crate) rule: String,
    pub(crate) trigger: &'static str,
    pub(crate) what: String,
    pub(crate) about: About,
    pub(crate) at: SystemTime,
}

/// What a fired alert is about.
#[derive(Debug)]
pub(crate) enum About {
    /// An issue, read from the store when the notification is written.
    Issue(IssueId),
    /// A route figure, complete as the metric thread measured it.
    Metric(MetricSummary),
}

impl Fired {
    pub(crate) fn issue(&self) -> Option<IssueId> {
        match self.about {
            About::Issue(id) => Some(id),
            About::Metric(_) => None,
        }
    }

    /// The history's title when no notification was written.
    fn title(&self) -> String {
        match &self.about {
            About::Issue(_) => self.what.clone(),
            About::Metric(metric) => format!("{}: {}", self.what, metric.subject()),
        }
    }
}

/// The worker's (and the metric thread's) end of one channel's queue.
#[derive(Clone)]
pub(crate) struct Outbox {
    pub(crate) channel: String,
    tx: Sender<Arc<Fired>>,
}

impl Outbox {
    /// Queues without waiting; a full queue or a stopped thread is a recorded failure.
    pub(crate) fn push(&self, fired: &Arc<Fired>, history: &AlertHistory) {
        let reason = match self.tx.try_send(fired.clone()) {
            Ok(()) => return,
            Err(TrySendError::Full(_)) => "the channel's queue is full",
            Err(TrySendError::Disconnected(_)) => "the channel's delivery thread stopped",
        };
        record(
            history,
            NewAlert {
                at: fired.at,
                rule: fired.rule.clone(),
                channel: Some(self.channel.clone()),
                status: AlertStatus::Failed,
                issue: fired.issue(),
                title: fired.title(),
                attempts: 0,
                error: Some(reason.into()),
            },
        );
    }
}

/// What a channel's thread needs.
pub(crate) struct Context {
    pub(crate) sender: Courier,
    pub(crate) reader: StoreReader,
    pub(crate) history: AlertHistory,
    pub(crate) dashboard_url: Option<String>,
}

/// Starts the delivery thread of `channel`.
pub(crate) fn spawn(channel: Channel, context: Arc<Context>) -> std::io::Result<Outbox> {
    let (tx, rx) = crossbeam_channel::bounded(QUEUE);
    let name = channel.name().to_owned();
    thread::Builder::new()
        .name(format!("backstop-alert-{name}"))
        .spawn(move || run(channel, rx, context))?;
    Ok(Outbox { channel: name, tx })
}

fn run(channel: Channel, rx: Receiver<Arc<Fired>>, context: Arc<Context>) {
    // Set by a 410: the receiver is gone, so the channel sends nothing more.
    let mut gone: Option<String> = None;
    for fired in rx {
        let n = notification(&fired, &context);
        let (attempts, result) = match &gone {
            Some(reason) => (0, Err(format!("channel stopped after {reason}"))),
            None => {
                let (attempts, result) = context.sender.deliver(&channel, &n);
                let result = result.map_err(|failure| match failure {
                    Failure::Gone(reason) => {
                        tracing::error!(target: "backstop", channel = channel.name(), "alert channel answered {reason}; it is stopped until restart");
                        gone = Some(reason.clone());
                        reason
                    }
                    Failure::Retry { reason, .. } | Failure::Final(reason) => reason,
                });
                (attempts, result)
            }
        };
        if let Err(reason) = &result {
            tracing::warn!(target: "backstop", channel = channel.name(), attempts, "alert not delivered: {reason}");
        }
        record(
            &context.history,
            NewAlert {
                at: fired.at,
                rule: fired.rule.clone(),
                channel: Some(channel.name().to_owned()),
                status: if result.is_ok() {
                    AlertStatus::Sent
                } else {
                    AlertStatus::Failed
                },
                issue: fired.issue(),
                title: n.summary(),
                attempts,
                error: result.err(),
            },
        );
    }
}

/// The notification for `fired`, with the issue as the store has it now.
fn notification(fired: &Fired, context: &Context) -> Notification {
    let (issue, metric, url) = match &fired.about {
        About::Issue(id) => {
            let issue = match context.reader.issue(*id, 0) {
                Ok(Some(detail)) => Some(IssueSummary::from_issue(&detail.issue)),
                Ok(None) => None,
                Err(error) => {
                    tracing::warn!(target: "backstop", "alert without issue details: {error}");
                    None
                }
            };
            let url = context
                .dashboard_url
                .as_deref()
                .map(|base| issue_url(base, *id));
            (issue, None, url)
        }
        About::Metric(metric) => {
            let url = context
                .dashboard_url
                .as_deref()
                .map(|base| route_url(base, metric.route.as_deref()));
            (None, Some(metric.clone()), url)
        }
    };
    Notification {
        id: message_id(),
        action: fired.action,
        rule: fired.rule.clone(),
        trigger: fired.trigger.to_owned(),
        what: fired.what.clone(),
        issue,
        metric,
        url,
        timestamp: rfc3339(fired.at),
    }
}

pub(crate) fn message_id() -> String {
    format!("msg_{}", uuid::Uuid::new_v4().simple())
}

pub(crate) fn record(history: &AlertHistory, alert: NewAlert) {
    if let Err(error) = history.record(&alert) {
        tracing::warn!(target: "backstop", "alert history not written: {error}");
    }
}
