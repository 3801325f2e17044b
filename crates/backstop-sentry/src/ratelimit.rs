//! Rate limits, as the server announces them: `X-Sentry-Rate-Limits` on any response,
//! else `Retry-After` on a 429, else 60 seconds for a bare 429.

use std::time::{Duration, Instant, SystemTime};

use crate::envelope::Category;

/// How long a bare 429 (no header saying otherwise) limits everything.
pub(crate) const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Until when each category may not be sent.
#[derive(Debug, Default, Clone)]
pub(crate) struct RateLimits {
    all: Option<Instant>,
    error: Option<Instant>,
    transaction: Option<Instant>,
}

impl RateLimits {
    /// Takes in what a response said. `rate_limits` is `X-Sentry-Rate-Limits`,
    /// `retry_after` is `Retry-After`.
    pub(crate) fn update(
        &mut self,
        status: u16,
        rate_limits: Option<&str>,
        retry_after: Option<&str>,
        now: Instant,
    ) {
        if let Some(header) = rate_limits.filter(|h| !h.trim().is_empty()) {
            self.update_from_header(header, now);
        } else if status == 429 {
            let wait = retry_after
                .and_then(parse_retry_after)
                .unwrap_or(DEFAULT_RETRY_AFTER);
            extend(&mut self.all, now + wait);
        }
    }

    /// `<retry_after>:<categories>:<scope>[:<reason>[:<namespaces>]]`, comma-separated;
    /// categories are `;`-separated, and none means all. Unknown categories do not
    /// concern this sender; a malformed group is skipped.
    fn update_from_header(&mut self, header: &str, now: Instant) {
        for group in header.split(',') {
            let mut parts = group.trim().split(':');
            let Some(Ok(seconds)) = parts.next().map(|s| s.trim().parse::<f64>()) else {
                continue;
            };
            if !seconds.is_finite() || seconds < 0.0 {
                continue;
            }
            let until = now + Duration::from_secs_f64(seconds.min(86_400.0).ceil());
            let categories = parts.next().unwrap_or("").trim();
            if categories.is_empty() {
                extend(&mut self.all, until);
                continue;
            }
            for category in categories.split(';') {
                match category.trim() {
                    "error" | "default" => extend(&mut self.error, until),
                    "transaction" => extend(&mut self.transaction, until),
                    _ => {}
                }
            }
        }
    }

    /// Whether every category is limited now (client reports wait too).
    pub(crate) fn all_limited(&self, now: Instant) -> bool {
        self.all.is_some_and(|t| t > now)
    }

    /// Until when `category` is limited, if it is now.
    pub(crate) fn limited(&self, category: Category, now: Instant) -> Option<Instant> {
        let own = match category {
            Category::Error => self.error,
            Category::Transaction | Category::Span => self.transaction,
        };
        [self.all, own]
            .into_iter()
            .flatten()
            .filter(|t| *t > now)
            .max()
    }
}

fn extend(slot: &mut Option<Instant>, until: Instant) {
    if slot.is_none_or(|t| t < until) {
        *slot = Some(until);
    }
}

/// Seconds, or an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0)
            .then(|| Duration::from_secs_f64(seconds.min(86_400.0).ceil()));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_limits_only_the_categories_it_names() {
        let now = Instant::now();
        let mut limits = RateLimits::default();
        limits.update(200, Some("60:transaction:key, 2::organization"), None, now);
        assert!(
            limits
                .limited(Category::Transaction, now + Duration::from_secs(30))
                .is_some()
        );
        assert!(
            limits
                .limited(Category::Error, now + Duration::from_secs(1))
                .is_some(),
            "all, for 2 s"
        );
        assert!(
            limits
                .limited(Category::Error, now + Duration::from_secs(3))
                .is_none()
        );
    }

    #[test]
    fn a_429_without_the_header_uses_retry_after_else_a_minute() {
        let now = Instant::now();
        let mut limits = RateLimits::default();
        limits.update(429, None, Some("5"), now);
        assert!(
            limits
                .limited(Category::Error, now + Duration::from_secs(4))
                .is_some()
        );
        assert!(
            limits
                .limited(Category::Error, now + Duration::from_secs(6))
                .is_none()
        );
        let mut limits = RateLimits::default();
        limits.update(429, None, None, now);
        assert!(
            limits
                .limited(Category::Transaction, now + Duration::from_secs(59))
                .is_some()
        );
        assert!(
            limits
                .limited(Category::Transaction, now + Duration::from_secs(61))
                .is_none()
        );
        let mut limits = RateLimits::default();
        limits.update(429, Some("nonsense, :x"), Some("soon"), now);
        assert!(
            limits.limited(Category::Error, now).is_none(),
            "malformed groups are skipped"
        );
    }
}
