//! Channels: where notifications go, and how each one is written for its receiver.

mod discord;
mod email;
mod http;
mod pagerduty;
mod slack;
mod webhook;

use std::fmt;
use std::time::Duration;

use url::Url;

use crate::ConfigError;
use crate::notification::Notification;

pub use email::Email;
pub(crate) use http::Failure;
pub use webhook::WebhookSecret;

/// PagerDuty's Events API v2 endpoint.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// A place notifications are sent to. URLs come only from configuration.
#[derive(Clone)]
pub struct Channel {
    name: String,
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Slack(Url),
    Discord(Url),
    Webhook(Url, WebhookSecret),
    PagerDuty { routing_key: String, endpoint: Url },
    Email(Box<Email>),
}

impl fmt::Debug for Channel {
    // URLs of chat webhooks and keys are secrets: only the name and the kind show.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Slack(_) => "slack",
            Kind::Discord(_) => "discord",
            Kind::Webhook(..) => "webhook",
            Kind::PagerDuty { .. } => "pagerduty",
            Kind::Email(_) => "email",
        };
        f.debug_struct("Channel")
            .field("name", &self.name)
            .field("kind", &kind)
            .finish_non_exhaustive()
    }
}

impl Channel {
    /// A Slack incoming webhook (`https://hooks.slack.com/services/...`).
    pub fn slack(url: &str) -> Result<Channel, ConfigError> {
        Ok(Channel::named(
            "slack",
            Kind::Slack(http_url("slack URL", url)?),
        ))
    }

    /// A Discord webhook (`https://discord.com/api/webhooks/...`).
    pub fn discord(url: &str) -> Result<Channel, ConfigError> {
        Ok(Channel::named(
            "discord",
            Kind::Discord(http_url("discord URL", url)?),
        ))
    }

    /// A generic webhook: JSON bodies signed per Standard Webhooks with `secret`
    /// (`whsec_<base64>`). The body is described in `docs/alerts.md`.
    pub fn webhook(url: &str, secret: &str) -> Result<Channel, ConfigError> {
        let url = http_url("webhook URL", url)?;
        let secret = WebhookSecret::parse(secret).map_err(|reason| ConfigError::Invalid {
            setting: "webhook secret".into(),
            reason,
        })?;
        Ok(Channel::named("webhook", Kind::Webhook(url, secret)))
    }

    /// PagerDuty Events API v2 with an integration's routing key.
    pub fn pagerduty(routing_key: &str) -> Result<Channel, ConfigError> {
        let key = routing_key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(ConfigError::Invalid {
                setting: "PagerDuty routing key".into(),
                reason: "expected the integration's routing key (letters and digits)".into(),
            });
        }
        Ok(Channel::named(
            "pagerduty",
            Kind::PagerDuty {
                routing_key: key.to_owned(),
                endpoint: Url::parse(PAGERDUTY_EVENTS_URL).expect("a valid URL"),
            },
        ))
    }

    /// E-mail over SMTP.
    pub fn email(email: Email) -> Channel {
        Channel::named("email", Kind::Email(Box::new(email)))
    }

    fn named(name: &str, kind: Kind) -> Channel {
        Channel {
            name: name.to_owned(),
            kind,
        }
    }

    /// Renames the channel (for `--channel NAME` and the history), e.g. to tell two
    /// webhooks apart.
    #[must_use]
    pub fn rename(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sends PagerDuty events to another Events API v2 endpoint (a proxy, or a test
    /// receiver). Other channels are unchanged.
    pub fn pagerduty_endpoint(mut self, endpoint: &str) -> Result<Self, ConfigError> {
        if let Kind::PagerDuty { endpoint: e, .. } = &mut self.kind {
            *e = http_url("PagerDuty endpoint", endpoint)?;
        }
        Ok(self)
    }

    /// The channel's name (`slack`, `discord`, `webhook`, `pagerduty`, `email`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// One delivery attempt.
    pub(crate) fn send(
        &self,
        agent: &ureq::Agent,
        n: &Notification,
        timeout: Duration,
    ) -> Result<(), Failure> {
        match &self.kind {
            Kind::Slack(url) => http::post_json(agent, url, &[], &slack::body(n)),
            Kind::Discord(url) => http::post_json(agent, url, &[], &discord::body(n)),
            Kind::Webhook(url, secret) => webhook::send(agent, url, secret, n),
            Kind::PagerDuty {
                routing_key,
                endpoint,
            } => pagerduty::send(agent, endpoint, routing_key, n),
            Kind::Email(email) => email.send(n, timeout),
        }
    }
}

fn http_url(setting: &str, value: &str) -> Result<Url, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        setting: setting.to_owned(),
        reason,
    };
    let url = Url::parse(value.trim()).map_err(|e| invalid(format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
        return Err(invalid("expected an http:// or https:// URL".into()));
    }
    Ok(url)
}

/// Cuts `s` to at most `max` characters, ending with `…` when cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}
