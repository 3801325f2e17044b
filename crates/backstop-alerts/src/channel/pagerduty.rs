//! PagerDuty Events API v2: `trigger`, then `resolve` with the same `dedup_key`.

use serde_json::{Map, Value, json};
use url::Url;

use super::http::{Failure, post_json};
use super::truncate;
use crate::notification::{Action, Notification};

pub(crate) fn body(routing_key: &str, action: &str, n: &Notification) -> Vec<u8> {
    let mut event = json!({
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": n.dedup_key(),
    });
    if action == "trigger" {
        let level = match (&n.issue, &n.metric) {
            (Some(issue), _) => Some(issue.level.as_str()),
            (None, Some(metric)) if metric.metric == "error_rate" => Some("error"),
            (None, Some(_)) => Some("warning"),
            (None, None) => None,
        };
        let severity = match level {
            Some("fatal") => "critical",
            Some("error") => "error",
            Some("warning") => "warning",
            _ => "info",
        };
        let details: Map<String, Value> = n
            .facts()
            .into_iter()
            .map(|(label, value)| (label.to_owned(), Value::String(value)))
            .collect();
        let issue = n.issue.as_ref();
        let metric = n.metric.as_ref();
        let source = issue
            .and_then(|i| i.environment.as_deref())
            .or_else(|| metric.and_then(|m| m.environment.as_deref()))
            .unwrap_or("backstop");
        let component = issue
            .and_then(|i| i.culprit.clone())
            .or_else(|| metric.map(|m| m.subject()));
        let class = issue
            .map(|i| i.kind.as_str())
            .or_else(|| metric.map(|m| m.metric));
        event["payload"] = json!({
            "summary": truncate(&n.summary(), 1024),
            "source": source,
            "severity": severity,
            "timestamp": n.timestamp,
            "component": component,
            "class": class,
            "custom_details": details,
        });
        event["client"] = json!("Backstop");
        if let Some(url) = &n.url {
            event["client_url"] = json!(url);
            event["links"] = json!([{"href": url, "text": "Open in Backstop"}]);
        }
    }
    serde_json::to_vec(&event).expect("JSON values serialize")
}

pub(crate) fn send(
    agent: &ureq::Agent,
    endpoint: &Url,
    routing_key: &str,
    n: &Notification,
) -> Result<(), Failure> {
    match n.action {
        Action::Trigger => post_json(agent, endpoint, &[], &body(routing_key, "trigger", n)),
        Action::Resolve => post_json(agent, endpoint, &[], &body(routing_key, "resolve", n)),
        // A test opens an incident and closes it again, so nobody is left paged.
        Action::Test => {
            post_json(agent, endpoint, &[], &body(routing_key, "trigger", n))?;
            post_json(agent, endpoint, &[], &body(routing_key, "resolve", n))
        }
    }
}
