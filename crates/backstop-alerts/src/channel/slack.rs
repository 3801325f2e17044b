//! Slack incoming webhooks: `text` for notifications, blocks for the message.

use serde_json::{Value, json};

use super::truncate;
use crate::notification::Notification;

/// Slack's mrkdwn treats only these three as control characters.
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub(crate) fn body(n: &Notification) -> Vec<u8> {
    let summary = escape(&truncate(&n.summary(), 2900));
    let heading = match &n.url {
        Some(url) => format!("*<{}|{summary}>*", escape(url)),
        None => format!("*{summary}*"),
    };
    let fields: Vec<Value> = n
        .facts()
        .into_iter()
        .take(10)
        .map(|(label, value)| {
            json!({"type": "mrkdwn", "text": format!("*{label}*\n{}", escape(&truncate(&value, 1900)))})
        })
        .collect();
    let payload = json!({
        "text": summary,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": heading}},
            {"type": "section", "fields": fields},
        ],
    });
    serde_json::to_vec(&payload).expect("JSON values serialize")
}
