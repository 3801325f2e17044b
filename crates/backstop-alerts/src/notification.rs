//! What a notification says, whatever the channel.

use std::fmt::Write as _;
use std::time::SystemTime;

use backstop_store::{Issue, IssueId};
use serde::Serialize;

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
    /// The dashboard page to open, when `BACKSTOP_DASHBOARD_URL` is set.
    pub url: Option<String>,
    /// When the rule fired, RFC 3339.
    pub timestamp: String,
}

impl Notification {
    /// A one-line summary: `New issue: ZeroDivisionError: division by zero`.
    pub fn summary(&self) -> String {
        match &self.issue {
            Some(issue) => format!("{}: {}", self.what, issue.title),
            None => self.what.clone(),
        }
    }

    /// Where a repeated trigger and its resolve meet (PagerDuty's `dedup_key`): the
    /// issue's fingerprint, else the rule.
    pub fn dedup_key(&self) -> String {
        match &self.issue {
            Some(issue) => format!("backstop-{}", issue.fingerprint),
            None => format!("backstop-rule-{}", self.rule),
        }
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

/// The dashboard page of an issue under `base`.
pub(crate) fn issue_url(base: &str, id: IssueId) -> String {
    format!("{}/issues/{}", base.trim_end_matches('/'), id.0)
}
