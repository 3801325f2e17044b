//! One HTTP POST, and what its outcome means for retrying.

use std::time::{Duration, SystemTime};

use url::Url;

/// Why an attempt failed, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// A network error, a timeout, a 5xx or a 429: try again (after `after`, if the
    /// receiver said).
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// The receiver refused it for good (a 4xx, a redirect elsewhere, a bad address).
    Final(String),
    /// 410 Gone: the receiver was removed; the channel stops.
    Gone(String),
}

/// Same-host redirects followed at most.
const MAX_REDIRECTS: usize = 3;

pub(crate) fn post_json(
    agent: &ureq::Agent,
    url: &Url,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(), Failure> {
    let mut url = url.clone();
    for _ in 0..=MAX_REDIRECTS {
        let mut request = agent
            .post(url.as_str())
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = match request.send(body) {
            Ok(response) => response,
            Err(e) => {
                return Err(Failure::Retry {
                    reason: network_error(&e),
                    after: None,
                });
            }
        };
        let status = response.status().as_u16();
        match status {
            200..=299 => return Ok(()),
            300..=399 => {
                let location = response
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|l| url.join(l).ok());
                match location {
                    // The same scheme, host and port: the receiver moved a path.
                    Some(next) if next.origin() == url.origin() => url = next,
                    _ => {
                        return Err(Failure::Final(format!(
                            "HTTP {status}: a redirect to another host, not followed"
                        )));
                    }
                }
            }
            410 => return Err(Failure::Gone("HTTP 410 Gone".into())),
            429 | 500..=599 => {
                let after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(retry_after);
                return Err(Failure::Retry {
                    reason: format!("HTTP {status}"),
                    after,
                });
            }
            _ => return Err(Failure::Final(format!("HTTP {status}"))),
        }
    }
    Err(Failure::Final("too many redirects".into()))
}

/// Delta-seconds or an HTTP date.
fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

/// The error without the URL: webhook URLs carry their secret in the path.
fn network_error(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(_) => "timed out".into(),
        ureq::Error::Io(io) => format!("network error: {}", io.kind()),
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        other => format!("request failed: {}", kind_only(other)),
    }
}

fn kind_only(e: &ureq::Error) -> String {
    let text = e.to_string();
    // Keep the gist, never an address.
    text.split(':').next().unwrap_or("error").trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        assert_eq!(retry_after("7"), Some(Duration::from_secs(7)));
        let later = SystemTime::now() + Duration::from_secs(120);
        let d = retry_after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        assert_eq!(retry_after("soon"), None);
    }
}
