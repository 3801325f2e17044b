//! E-mail over SMTP with lettre: a plain-text and an HTML part.

use std::fmt;
use std::time::Duration;

use lettre::message::{Mailbox, Mailboxes, MultiPart};
use lettre::{Message, SmtpTransport, Transport};

use super::http::Failure;
use crate::ConfigError;
use crate::notification::Notification;

/// Where alert e-mail goes and through which server.
#[derive(Clone)]
pub struct Email {
    to: Mailboxes,
    from: Mailbox,
    /// `smtp://host:port` (plain, for a local relay), `smtp://host?tls=required`
    /// (STARTTLS), `smtps://user:pass@host` (implicit TLS).
    smtp_url: String,
}

impl fmt::Debug for Email {
    // The SMTP URL may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Email")
            .field("to", &self.to.to_string())
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl Email {
    /// Mail to `to` (comma-separated addresses), from `from`, through the SMTP server
    /// at `smtp_url`. Each is checked here, and an error names the one at fault.
    pub fn new(to: &str, from: &str, smtp_url: &str) -> Result<Email, ConfigError> {
        let to: Mailboxes = to.parse().map_err(|e| ConfigError::Invalid {
            setting: "e-mail recipients".into(),
            reason: format!("not a list of addresses ({e})"),
        })?;
        if to.iter().next().is_none() {
            return Err(ConfigError::Invalid {
                setting: "e-mail recipients".into(),
                reason: "no address given".into(),
            });
        }
        let from: Mailbox = from.trim().parse().map_err(|e| ConfigError::Invalid {
            setting: "e-mail sender".into(),
            reason: format!("not an address ({e})"),
        })?;
        // Parsed now so that a bad URL fails at init, not at the first alert.
        SmtpTransport::from_url(smtp_url.trim()).map_err(|_| ConfigError::Invalid {
            setting: "SMTP URL".into(),
            reason: "expected smtp://host:port, smtp://host?tls=required or smtps://user:pass@host"
                .into(),
        })?;
        Ok(Email {
            to,
            from,
            smtp_url: smtp_url.trim().to_owned(),
        })
    }

    pub(crate) fn send(&self, n: &Notification, timeout: Duration) -> Result<(), Failure> {
        let subject = format!("[Backstop] {}", super::truncate(&n.summary(), 200));
        let mut builder = Message::builder().from(self.from.clone()).subject(subject);
        for to in self.to.iter() {
            builder = builder.to(to.clone());
        }
        let message = builder
            .multipart(MultiPart::alternative_plain_html(n.text(), n.html()))
            .map_err(|e| Failure::Final(format!("cannot build the message: {e}")))?;
        let transport = SmtpTransport::from_url(&self.smtp_url)
            .map_err(|_| Failure::Final("bad SMTP URL".into()))?
            .timeout(Some(timeout))
            .build();
        transport.send(&message).map(|_| ()).map_err(|e| {
            let reason = format!("SMTP: {}", smtp_reason(&e));
            if e.is_permanent() {
                Failure::Final(reason)
            } else {
                Failure::Retry {
                    reason,
                    after: None,
                }
            }
        })
    }
}

/// The server's answer or the kind of failure, without the URL and its password.
fn smtp_reason(e: &lettre::transport::smtp::Error) -> String {
    match e.status() {
        Some(code) => format!("the server answered {code}"),
        None if e.is_timeout() => "timed out".into(),
        None if e.is_tls() => "TLS failed".into(),
        None => "connection failed".into(),
    }
}
