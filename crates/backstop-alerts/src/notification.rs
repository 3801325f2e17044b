//! What a notification says, whatever the channel.

use std::fmt::Write as _;
use std::time::SystemTime;

use backstop_store::{Issue, IssueId};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

/// Whether a notification opens or closes an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A rule fired.
    Trigger,
    /// The condition of a rule that fired no longer holds (metric rules).
    Resolve,
    /// A test notification, sent on request.
    Test,
}

/// The issue a notification is about, as the store has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssueSummary {
    /// The issue's id in the store.
    pub id: i64,
    /// Its fingerprint (PagerDuty's `dedup_key`).
    pub fingerprint: String,
    /// `error`, or the performance problem's kind (`n_plus_one`).
    pub kind: String,
    /// `Type: message`, or the query at fault.
    pub title: String,
    /// The top in-app frame, the transaction, or the route.
    pub culprit: Option<String>,
    /// The latest event's level.
    pub level: String,
    /// Events so far.
    pub count: u64,
    /// Distinct users affected so far.
    pub users: u64,
    /// The first event, RFC 3339.
    pub first_seen: String,
    /// The latest event, RFC 3339.
    pub last_seen: String,
    /// The latest event's environment.
    pub environment: Option<String>,
    /// The latest event's release.
    pub release: Option<String>,
}

impl IssueSummary {
    pub(crate) fn from_issue(issue: &Issue) -> IssueSummary {
        IssueSummary {
            id: issue.id.0,
            fingerprint: issue.fingerprint.clone(),
            kind: issue.kind.as_str().to_owned(),
            title: issue.title.clone(),
            culprit: issue.culprit.clone(),
            level: issue.level.as_str().to_owned(),
            count: issue.count,
            users: issue.users,
            first_seen: rfc3339(issue.first_seen),
            last_seen: rfc3339(issue.last_seen),
            environment: issue.last_environment.clone(),
            release: issue.last_release.clone(),
        }
    }
}

/// The figure a metric alert is about: which route, its value and the threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricSummary {
    /// `p95` (a duration, in milliseconds) or `error_rate` (a fraction: `0.25` is 25%).
    pub metric: &'static str,
    /// The route, or `None` for a service-wide figure.
    pub route: Option<String>,
    /// The rule's route pattern, for a service-wide figure over some routes.
    pub routes: Option<String>,
    /// The environment judged, when the rule names environments.
    pub environment: Option<String>,
    /// The value over the window (milliseconds for `p95`, a fraction for `error_rate`).
    pub value: f64,
    /// The rule's threshold, in the same unit.
    pub threshold: f64,
    /// `ms` or `fraction`.
    pub unit: &'static str,
    /// The window, in seconds (whole minutes).
    pub window_secs: u64,
    /// Requests in the window.
    pub requests: u64,
    /// Failed requests in the window.
    pub errors: u64,
}

impl MetricSummary {
    /// What is watched: `GET /users`, `all routes` or `routes matching /api/*`.
    pub fn subject(&self) -> String {
        match (&self.route, &self.routes) {
            (Some(route), _) => route.clone(),
            (None, Some(pattern)) => format!("routes matching {pattern}"),
            (None, None) => "all routes".to_owned(),
        }
    }

    /// `812 ms` or `25.0%`.
    pub fn format(&self, value: f64) -> String {
        match self.unit {
            "ms" if value < 10.0 => format!("{value:.1} ms"),
            "ms" => format!("{value:.0} ms"),
            _ => format!("{:.1}%", value * 100.0),
        }
    }
}

/// One notification, as every channel renders it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    /// Unique per notification (`msg_...`); the webhook's `webhook-id`.
    pub id: String,
    /// Trigger, resolve or test.
    pub action: Action,
    /// The rule's name (`new-issue`).
    pub rule: String,
    /// The rule's trigger (`new_issue`, `regression`, `frequency`, `users`, `test`).
    pub trigger: String,
    /// What happened, in one line (`New issue`, `More than 100 events in 5m`).
    pub what: String,
    /// The issue, when the alert is about one.
    pub issue: Option<IssueSummary>,
    /// The route figure, for a metric alert.
    pub metric: Option<MetricSummary>,
    /// The dashboard page to open, when `BACKSTOP_DASHBOARD_URL` is set.
    pub url: Option<String>,
    /// When the rule fired, RFC 3339.
    pub timestamp: String,
}

impl Notification {
    /// A one-line summary: `New issue: ZeroDivisionError: division by zero`.
    pub fn summary(&self) -> String {
        match (&self.issue, &self.metric) {
            (Some(issue), _) => format!("{}: {}", self.what, issue.title),
            (None, Some(metric)) => format!("{}: {}", self.what, metric.subject()),
            (None, None) => self.what.clone(),
        }
    }

    /// What the alert is about in a few words: the issue's title, the route, else
    /// what happened.
    pub fn title(&self) -> String {
        match (&self.issue, &self.metric) {
            (Some(issue), _) => issue.title.clone(),
            (None, Some(metric)) => metric.subject(),
            (None, None) => self.what.clone(),
        }
    }

    /// Where a repeated trigger and its resolve meet (PagerDuty's `dedup_key`): the
    /// issue's fingerprint, else the rule (with the environment and route of a metric
    /// alert). At most 255 characters, as PagerDuty allows.
    pub fn dedup_key(&self) -> String {
        let key = match (&self.issue, &self.metric) {
            (Some(issue), _) => format!("backstop-{}", issue.fingerprint),
            (None, Some(metric)) => {
                let mut key = format!("backstop-rule-{}", self.rule);
                if let Some(environment) = &metric.environment {
                    let _ = write!(key, "@{environment}");
                }
                if let Some(route) = &metric.route {
                    let _ = write!(key, ":{route}");
                }
                key
            }
            (None, None) => format!("backstop-rule-{}", self.rule),
        };
        if key.len() <= 255 {
            return key;
        }
        // Still one key per rule and route: a prefix, and a digest of the whole.
        let digest = Sha256::digest(key.as_bytes());
        let mut short: String = key.chars().take(180).collect();
        short.push('#');
        for byte in &digest[..16] {
            let _ = write!(short, "{byte:02x}");
        }
        short
    }

    /// The facts as label/value pairs, in the order every channel shows them.
    pub fn facts(&self) -> Vec<(&'static str, String)> {
        let mut facts = vec![("Rule", self.rule.clone())];
        if let Some(issue) = &self.issue {
            if let Some(culprit) = &issue.culprit {
                facts.push(("Culprit", culprit.clone()));
            }
            facts.push(("Events", issue.count.to_string()));
            facts.push(("Users", issue.users.to_string()));
            facts.push(("First seen", issue.first_seen.clone()));
            facts.push(("Last seen", issue.last_seen.clone()));
            facts.push((
                "Environment",
                issue.environment.clone().unwrap_or_else(|| "-".into()),
            ));
            facts.push((
                "Release",
                issue.release.clone().unwrap_or_else(|| "-".into()),
            ));
        }
        if let Some(metric) = &self.metric {
            let name = match metric.metric {
                "p95" => "p95",
                _ => "Error rate",
            };
            facts.push(("Route", metric.subject()));
            facts.push((name, metric.format(metric.value)));
            facts.push(("Threshold", metric.format(metric.threshold)));
            facts.push((
                "Window",
                humantime::format_duration(std::time::Duration::from_secs(metric.window_secs))
                    .to_string(),
            ));
            facts.push(("Requests", metric.requests.to_string()));
            facts.push(("Errors", metric.errors.to_string()));
            if let Some(environment) = &metric.environment {
                facts.push(("Environment", environment.clone()));
            }
        }
        facts
    }

    /// The plain-text rendering (the e-mail's text part).
    pub fn text(&self) -> String {
        let mut out = format!("{}\n\n", self.summary());
        for (label, value) in self.facts() {
            let _ = writeln!(out, "{label}: {value}");
        }
        if let Some(url) = &self.url {
            let _ = write!(out, "\n{url}\n");
        }
        out
    }

    /// The HTML rendering (the e-mail's HTML part), every value escaped.
    pub fn html(&self) -> String {
        let mut out = format!(
            "<!doctype html><html><body><h2>{}</h2><table>",
            escape_html(&self.summary())
        );
        for (label, value) in self.facts() {
            let _ = write!(
                out,
                "<tr><th align=\"left\">{label}</th><td>{}</td></tr>",
                escape_html(&value)
            );
        }
        out.push_str("</table>");
        if let Some(url) = &self.url {
            let url = escape_html(url);
            let _ = write!(out, "<p><a href=\"{url}\">Open in Backstop</a></p>");
        }
        out.push_str("</body></html>");
        out
    }
}

pub(crate) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

pub(crate) fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The dashboard page of a route under `base`, or the route table.
pub(crate) fn route_url(base: &str, route: Option<&str>) -> String {
    let base = base.trim_end_matches('/');
    match route {
        Some(route) => format!(
            "{base}/performance/route?name={}",
            url::form_urlencoded::byte_serialize(route.as_bytes()).collect::<String>()
        ),
        None => format!("{base}/performance"),
    }
}

/// The dashboard page of an issue under `base`.
pub(crate) fn issue_url(base: &str, id: IssueId) -> String {
    format!("{}/issues/{}", base.trim_end_matches('/'), id.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric_alert(route: &str) -> Notification {
        Notification {
            id: "msg_1".into(),
            action: Action::Trigger,
            rule: "latency".into(),
            trigger: "latency".into(),
            what: "p95 812 ms, over 500 ms for 5m".into(),
            issue: None,
            metric: Some(MetricSummary {
                metric: "p95",
                route: Some(route.into()),
                routes: None,
                environment: None,
                value: 812.0,
                threshold: 500.0,
                unit: "ms",
                window_secs: 300,
                requests: 100,
                errors: 0,
            }),
            url: None,
            timestamp: "2026-12-07T10:41:30Z".into(),
        }
    }

    #[test]
    fn a_long_route_still_makes_one_pagerduty_key_per_route() {
        let a = metric_alert(&format!("GET /{}/a", "x".repeat(400))).dedup_key();
        let b = metric_alert(&format!("GET /{}/b", "x".repeat(400))).dedup_key();
        assert!(a.len() <= 255 && b.len() <= 255, "{a}");
        assert_ne!(a, b);
        assert_eq!(
            metric_alert("GET /slow").dedup_key(),
            "backstop-rule-latency:GET /slow"
        );
    }
}
