//! The generic webhook, signed per Standard Webhooks 1.0.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use url::Url;

use super::http::{Failure, post_json};
use crate::notification::Notification;

/// A Standard Webhooks signing secret (`whsec_<base64>`). Never printed.
#[derive(Clone)]
pub struct WebhookSecret(Vec<u8>);

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret([Filtered])")
    }
}

impl WebhookSecret {
    /// Parses `whsec_<base64>`.
    pub fn parse(s: &str) -> Result<WebhookSecret, String> {
        let encoded = s
            .trim()
            .strip_prefix("whsec_")
            .ok_or_else(|| "expected whsec_ followed by base64".to_owned())?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| "the part after whsec_ is not valid base64".to_owned())?;
        if key.len() < 16 {
            return Err("the key is shorter than 16 bytes".into());
        }
        Ok(WebhookSecret(key))
    }

    /// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
    pub fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// The webhook's JSON body (`docs/alerts.md`).
#[derive(Serialize)]
struct Body<'a> {
    /// `alert.trigger`, `alert.resolve` or `alert.test`.
    #[serde(rename = "type")]
    ty: String,
    timestamp: &'a str,
    data: &'a Notification,
}

pub(crate) fn body(n: &Notification) -> Vec<u8> {
    let action = serde_json::to_value(n.action).expect("an enum serializes");
    let body = Body {
        ty: format!("alert.{}", action.as_str().unwrap_or("trigger")),
        timestamp: &n.timestamp,
        data: n,
    };
    serde_json::to_vec(&body).expect("the body serializes")
}

pub(crate) fn send(
    agent: &ureq::Agent,
    url: &Url,
    secret: &WebhookSecret,
    n: &Notification,
) -> Result<(), Failure> {
    let body = body(n);
    // The same id on every attempt, so the receiver can drop a repeat.
    let id = &n.id;
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let signature = secret.sign(id, timestamp, &body);
    let timestamp = timestamp.to_string();
    post_json(
        agent,
        url,
        &[
            ("webhook-id", id),
            ("webhook-timestamp", &timestamp),
            ("webhook-signature", &signature),
        ],
        &body,
    )
}
