//! Configuration errors, and reading channels from the environment.

use crate::channel::{Channel, Email};

/// A bad alert setting, found at init. It names the setting (the environment
/// variable, when it came from one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The value is not usable.
    #[error("{setting}: {reason}")]
    Invalid {
        /// The setting, e.g. `BACKSTOP_ALERT_SLACK_URL`.
        setting: String,
        /// What is wrong with it (never the value, which may be a secret).
        reason: String,
    },
    /// A setting that another one needs is not set.
    #[error("{setting} is required when {because} is set")]
    Missing {
        /// The setting that is missing.
        setting: String,
        /// The setting that needs it.
        because: String,
    },
}

impl ConfigError {
    fn named(self, setting: &str) -> ConfigError {
        match self {
            ConfigError::Invalid { reason, .. } => ConfigError::Invalid {
                setting: setting.to_owned(),
                reason,
            },
            other => other,
        }
    }
}

/// The sender when `BACKSTOP_ALERT_EMAIL_FROM` is not set.
pub const DEFAULT_EMAIL_FROM: &str = "Backstop <backstop@localhost>";
/// The SMTP server when `BACKSTOP_SMTP_URL` is not set: a relay on this machine.
pub const DEFAULT_SMTP_URL: &str = "smtp://localhost:25";

/// What the environment configures.
pub(crate) struct FromEnv {
    pub(crate) channels: Vec<Channel>,
    pub(crate) dashboard_url: Option<String>,
}

pub(crate) fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<FromEnv, ConfigError> {
    // Empty counts as unset, as a shell's `VAR=` means.
    let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    let mut channels = Vec::new();
    if let Some(url) = get("BACKSTOP_ALERT_SLACK_URL") {
        channels.push(Channel::slack(&url).map_err(|e| e.named("BACKSTOP_ALERT_SLACK_URL"))?);
    }
    if let Some(url) = get("BACKSTOP_ALERT_DISCORD_URL") {
        channels.push(Channel::discord(&url).map_err(|e| e.named("BACKSTOP_ALERT_DISCORD_URL"))?);
    }
    match (
        get("BACKSTOP_ALERT_WEBHOOK_URL"),
        get("BACKSTOP_ALERT_WEBHOOK_SECRET"),
    ) {
        (Some(url), Some(secret)) => {
            let channel = Channel::webhook(&url, &secret).map_err(|e| match &e {
                ConfigError::Invalid { setting, .. } if setting == "webhook secret" => {
                    e.named("BACKSTOP_ALERT_WEBHOOK_SECRET")
                }
                _ => e.named("BACKSTOP_ALERT_WEBHOOK_URL"),
            })?;
            channels.push(channel);
        }
        (Some(_), None) => {
            return Err(ConfigError::Missing {
                setting: "BACKSTOP_ALERT_WEBHOOK_SECRET".into(),
                because: "BACKSTOP_ALERT_WEBHOOK_URL".into(),
            });
        }
        (None, Some(_)) => {
            return Err(ConfigError::Missing {
                setting: "BACKSTOP_ALERT_WEBHOOK_URL".into(),
                because: "BACKSTOP_ALERT_WEBHOOK_SECRET".into(),
            });
        }
        (None, None) => {}
    }
    if let Some(key) = get("BACKSTOP_ALERT_PAGERDUTY_KEY") {
        channels
            .push(Channel::pagerduty(&key).map_err(|e| e.named("BACKSTOP_ALERT_PAGERDUTY_KEY"))?);
    }
    if let Some(to) = get("BACKSTOP_ALERT_EMAIL_TO") {
        let from = get("BACKSTOP_ALERT_EMAIL_FROM").unwrap_or_else(|| DEFAULT_EMAIL_FROM.into());
        let smtp = get("BACKSTOP_SMTP_URL").unwrap_or_else(|| DEFAULT_SMTP_URL.into());
        let email = Email::new(&to, &from, &smtp).map_err(|e| match &e {
            ConfigError::Invalid { setting, .. } if setting == "e-mail sender" => {
                e.named("BACKSTOP_ALERT_EMAIL_FROM")
            }
            ConfigError::Invalid { setting, .. } if setting == "SMTP URL" => {
                e.named("BACKSTOP_SMTP_URL")
            }
            _ => e.named("BACKSTOP_ALERT_EMAIL_TO"),
        })?;
        channels.push(Channel::email(email));
    }
    let dashboard_url = match get("BACKSTOP_DASHBOARD_URL") {
        Some(url) => {
            let parsed = url::Url::parse(url.trim()).map_err(|e| ConfigError::Invalid {
                setting: "BACKSTOP_DASHBOARD_URL".into(),
                reason: format!("not a URL ({e})"),
            })?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(ConfigError::Invalid {
                    setting: "BACKSTOP_DASHBOARD_URL".into(),
                    reason: "expected an http:// or https:// URL".into(),
                });
            }
            Some(url.trim().trim_end_matches('/').to_owned())
        }
        None => None,
    };
    Ok(FromEnv {
        channels,
        dashboard_url,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<FromEnv, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        from_env(|k| map.get(k).cloned())
    }

    fn setting(e: ConfigError) -> String {
        match e {
            ConfigError::Invalid { setting, .. } | ConfigError::Missing { setting, .. } => setting,
        }
    }

    #[test]
    fn nothing_set_is_no_channel() {
        let got = env(&[("BACKSTOP_ALERT_SLACK_URL", "")]).unwrap();
        assert!(got.channels.is_empty());
        assert!(got.dashboard_url.is_none());
    }

    #[test]
    fn every_channel_from_its_variables() {
        let got = env(&[
            (
                "BACKSTOP_ALERT_SLACK_URL",
                "https://hooks.slack.com/services/T/B/X",
            ),
            (
                "BACKSTOP_ALERT_DISCORD_URL",
                "https://discord.com/api/webhooks/1/abc",
            ),
            ("BACKSTOP_ALERT_WEBHOOK_URL", "https://example.com/hook"),
            (
                "BACKSTOP_ALERT_WEBHOOK_SECRET",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            ),
            (
                "BACKSTOP_ALERT_PAGERDUTY_KEY",
                "R0123456789abcdefABCDEF012345678",
            ),
            (
                "BACKSTOP_ALERT_EMAIL_TO",
                "ops@example.com, dev@example.com",
            ),
            (
                "BACKSTOP_DASHBOARD_URL",
                "https://app.example.com/_backstop/",
            ),
        ])
        .unwrap();
        let names: Vec<&str> = got.channels.iter().map(Channel::name).collect();
        assert_eq!(names, ["slack", "discord", "webhook", "pagerduty", "email"]);
        assert_eq!(
            got.dashboard_url.as_deref(),
            Some("https://app.example.com/_backstop")
        );
    }

    #[test]
    fn a_bad_value_names_its_variable_and_not_its_value() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("BACKSTOP_ALERT_SLACK_URL", "hooks.slack.com/x")],
                "BACKSTOP_ALERT_SLACK_URL",
            ),
            (
                &[("BACKSTOP_ALERT_DISCORD_URL", "ftp://x/y")],
                "BACKSTOP_ALERT_DISCORD_URL",
            ),
            (
                &[
                    ("BACKSTOP_ALERT_WEBHOOK_URL", "https://example.com/hook"),
                    ("BACKSTOP_ALERT_WEBHOOK_SECRET", "s3cr3t-plain"),
                ],
                "BACKSTOP_ALERT_WEBHOOK_SECRET",
            ),
            (
                &[
                    ("BACKSTOP_ALERT_WEBHOOK_URL", "not a url"),
                    (
                        "BACKSTOP_ALERT_WEBHOOK_SECRET",
                        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                    ),
                ],
                "BACKSTOP_ALERT_WEBHOOK_URL",
            ),
            (
                &[("BACKSTOP_ALERT_WEBHOOK_URL", "https://example.com/hook")],
                "BACKSTOP_ALERT_WEBHOOK_SECRET",
            ),
            (
                &[("BACKSTOP_ALERT_PAGERDUTY_KEY", "has space")],
                "BACKSTOP_ALERT_PAGERDUTY_KEY",
            ),
            (
                &[("BACKSTOP_ALERT_EMAIL_TO", "not an address")],
                "BACKSTOP_ALERT_EMAIL_TO",
            ),
            (
                &[
                    ("BACKSTOP_ALERT_EMAIL_TO", "ops@example.com"),
                    ("BACKSTOP_ALERT_EMAIL_FROM", "@@"),
                ],
                "BACKSTOP_ALERT_EMAIL_FROM",
            ),
            (
                &[
                    ("BACKSTOP_ALERT_EMAIL_TO", "ops@example.com"),
                    ("BACKSTOP_SMTP_URL", "http://mail:25"),
                ],
                "BACKSTOP_SMTP_URL",
            ),
            (
                &[("BACKSTOP_DASHBOARD_URL", "javascript:alert(1)")],
                "BACKSTOP_DASHBOARD_URL",
            ),
        ];
        for (vars, name) in cases {
            let err = env(vars)
                .err()
                .unwrap_or_else(|| panic!("{vars:?} was accepted"));
            let message = err.to_string();
            assert_eq!(setting(err), *name, "{vars:?}");
            assert!(message.contains(name), "{message}");
            for (_, value) in vars.iter() {
                if value.len() > 8 {
                    assert!(!message.contains(value), "{message} shows the value");
                }
            }
        }
    }
}
