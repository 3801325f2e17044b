//! Discord webhooks: `content` plus one embed, within Discord's field limits.

use serde_json::{Value, json};

use super::truncate;
use crate::notification::{Action, Notification};

pub(crate) fn body(n: &Notification) -> Vec<u8> {
    let fields: Vec<Value> = n
        .facts()
        .into_iter()
        .take(25)
        .map(
            |(label, value)| json!({"name": label, "value": truncate(&value, 512), "inline": true}),
        )
        .collect();
    let title = n.title();
    let color = match n.action {
        Action::Trigger => 0xd0_3b_3b,
        Action::Resolve => 0x2e_a0_43,
        Action::Test => 0x5b_6b_f0,
    };
    let mut embed = json!({
        "title": truncate(&title, 256),
        "description": truncate(&n.what, 1024),
        "color": color,
        "fields": fields,
        "timestamp": n.timestamp,
    });
    if let Some(url) = &n.url {
        embed["url"] = json!(url);
    }
    let payload = json!({
        "content": truncate(&n.summary(), 2000),
        "embeds": [embed],
        // An issue title is whatever the service wrote: it must not ping anyone.
        "allowed_mentions": {"parse": []},
    });
    serde_json::to_vec(&payload).expect("JSON values serialize")
}
