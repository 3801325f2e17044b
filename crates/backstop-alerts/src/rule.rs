//! Rules: what fires an alert, which issues it looks at, and how often it may repeat.

use std::time::Duration;

use backstop_core::Level;
use backstop_store::IssueCategory;

/// The action interval rules get unless told otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30 * 60);

/// Metric rules judge nothing on fewer requests than this in their window, unless
/// told otherwise.
pub const DEFAULT_MIN_REQUESTS: u64 = 10;

/// What makes a rule fire.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Trigger {
    /// An issue is seen for the first time (an error or a performance problem).
    NewIssue,
    /// A resolved issue is seen again.
    Regression,
    /// More than `count` events of one issue within `window`.
    Frequency {
        /// The threshold: the rule fires on event `count + 1`.
        count: u64,
        /// The sliding window.
        window: Duration,
    },
    /// More than `count` distinct users affected by one issue within `window`.
    Users {
        /// The threshold: the rule fires on distinct user `count + 1`.
        count: u64,
        /// The sliding window.
        window: Duration,
    },
    /// A route's p95 duration over `p95` across the last `window` of its requests
    /// (whole minutes, from the route metrics). Resolves when it is back under.
    Latency {
        /// The threshold.
        p95: Duration,
        /// The window, rounded up to whole minutes.
        window: Duration,
    },
    /// A route's failure rate (or, `service_wide`, that of every route the rule's
    /// filters take, combined) over `rate` across the last `window`. Resolves when it
    /// is back under.
    ErrorRate {
        /// The threshold, a fraction of requests: `0.05` is 5%.
        rate: f64,
        /// The window, rounded up to whole minutes.
        window: Duration,
        /// One figure for all routes together, instead of one per route.
        service_wide: bool,
    },
}

impl Trigger {
    /// A short name for the trigger (`new_issue`, `regression`, `frequency`, `users`),
    /// as the webhook body's `trigger` field has it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Trigger::NewIssue => "new_issue",
            Trigger::Regression => "regression",
            Trigger::Frequency { .. } => "frequency",
            Trigger::Users { .. } => "users",
            Trigger::Latency { .. } => "latency",
            Trigger::ErrorRate { .. } => "error_rate",
        }
    }

    /// Whether the trigger reads the route metrics (on the alerts' own thread) rather
    /// than the issues a batch touched.
    pub fn is_metric(&self) -> bool {
        matches!(self, Trigger::Latency { .. } | Trigger::ErrorRate { .. })
    }
}

/// An alert rule: a trigger, filters, and an action interval per issue.
///
/// ```
/// use std::time::Duration;
/// use backstop_alerts::Rule;
/// use backstop_core::Level;
///
/// let rule = Rule::frequency(50, Duration::from_secs(60))
///     .environment("production")
///     .min_level(Level::Error)
///     .route("/api/*")
///     .interval(Duration::from_secs(3600));
/// assert_eq!(rule.name(), "frequency");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct Rule {
    pub(crate) name: String,
    pub(crate) trigger: Trigger,
    pub(crate) environments: Vec<String>,
    pub(crate) min_level: Option<Level>,
    pub(crate) category: Option<IssueCategory>,
    pub(crate) route: Option<String>,
    pub(crate) interval: Duration,
    pub(crate) min_requests: u64,
}

impl Rule {
    /// A rule with this trigger, no filters and the default interval (30 minutes).
    pub fn new(trigger: Trigger) -> Rule {
        let name = match &trigger {
            Trigger::NewIssue => "new-issue",
            Trigger::Regression => "regression",
            Trigger::Frequency { .. } => "frequency",
            Trigger::Users { .. } => "users",
            Trigger::Latency { .. } => "latency",
            Trigger::ErrorRate {
                service_wide: false,
                ..
            } => "error-rate",
            Trigger::ErrorRate {
                service_wide: true, ..
            } => "service-error-rate",
        };
        Rule {
            name: name.to_owned(),
            trigger,
            environments: Vec::new(),
            min_level: None,
            category: None,
            route: None,
            interval: DEFAULT_INTERVAL,
            min_requests: DEFAULT_MIN_REQUESTS,
        }
    }

    /// Fires when an issue is first seen.
    pub fn new_issue() -> Rule {
        Rule::new(Trigger::NewIssue)
    }

    /// Fires when a resolved issue is seen again.
    pub fn regression() -> Rule {
        Rule::new(Trigger::Regression)
    }

    /// Fires when one issue has more than `count` events within `window`.
    pub fn frequency(count: u64, window: Duration) -> Rule {
        Rule::new(Trigger::Frequency { count, window })
    }

    /// Fires when one issue affects more than `count` distinct users within `window`.
    pub fn users(count: u64, window: Duration) -> Rule {
        Rule::new(Trigger::Users { count, window })
    }

    /// Fires when a route's p95 duration over the last `window` (whole minutes) is
    /// above `p95`, and resolves when it is back under. Needs
    /// [`min_requests`](Rule::min_requests) in the window.
    ///
    /// ```
    /// use std::time::Duration;
    /// use backstop_alerts::Rule;
    ///
    /// // A route's p95 over 500 ms for 5 minutes, in production, under /api/.
    /// let rule = Rule::latency(Duration::from_millis(500), Duration::from_secs(300))
    ///     .environment("production")
    ///     .route("/api/*");
    /// assert_eq!(rule.name(), "latency");
    /// ```
    pub fn latency(p95: Duration, window: Duration) -> Rule {
        Rule::new(Trigger::Latency { p95, window })
    }

    /// Fires when a route's failure rate over the last `window` (whole minutes) is
    /// above `rate` (a fraction: `0.05` is 5%), and resolves when it is back under.
    pub fn error_rate(rate: f64, window: Duration) -> Rule {
        Rule::new(Trigger::ErrorRate {
            rate,
            window,
            service_wide: false,
        })
    }

    /// As [`error_rate`](Rule::error_rate), over all the routes the rule's filters
    /// take, counted together: the service's failure rate.
    pub fn service_error_rate(rate: f64, window: Duration) -> Rule {
        Rule::new(Trigger::ErrorRate {
            rate,
            window,
            service_wide: true,
        })
    }

    /// The rules used when channels are configured and no rule is given: a new issue,
    /// a regression, and more than 100 events of one issue in 5 minutes.
    pub fn defaults() -> Vec<Rule> {
        vec![
            Rule::new_issue(),
            Rule::regression(),
            Rule::frequency(100, Duration::from_secs(300)),
        ]
    }

    /// Names the rule in notifications and the history.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Only occurrences from this environment (call again to allow more). A metric
    /// rule judges each environment named on its own figures.
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environments.push(environment.into());
        self
    }

    /// Only occurrences at this level or above (performance problems are `warning`).
    /// Metric rules have no level and ignore it.
    pub fn min_level(mut self, level: Level) -> Self {
        self.min_level = Some(level);
        self
    }

    /// Only error issues, or only performance issues. Metric rules ignore it.
    pub fn category(mut self, category: IssueCategory) -> Self {
        self.category = Some(category);
        self
    }

    /// Only occurrences on routes matching `pattern`, where `*` matches any run of
    /// characters (`/api/*`, `GET /users/*`). A metric rule watches the routes that
    /// match.
    pub fn route(mut self, pattern: impl Into<String>) -> Self {
        self.route = Some(pattern.into());
        self
    }

    /// The same issue fires this rule again only after `interval` (default 30 minutes).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Metric rules judge nothing on fewer requests than this in their window
    /// (default 10), so one slow request does not page anyone.
    pub fn min_requests(mut self, min: u64) -> Self {
        self.min_requests = min;
        self
    }

    /// The rule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The trigger.
    pub fn trigger(&self) -> &Trigger {
        &self.trigger
    }

    /// Whether a metric rule watches `route`.
    pub(crate) fn takes_route(&self, route: &str) -> bool {
        self.route.as_deref().is_none_or(|p| glob(p, route))
    }

    pub(crate) fn matches(&self, o: &Occurrence<'_>) -> bool {
        (self.environments.is_empty()
            || o.environment
                .is_some_and(|e| self.environments.iter().any(|x| x == e)))
            && self.min_level.is_none_or(|min| o.level >= min)
            && self.category.is_none_or(|c| c == o.category)
            && self
                .route
                .as_deref()
                .is_none_or(|p| o.route.is_some_and(|r| glob(p, r)))
    }
}

/// What a rule's filters look at in one occurrence.
pub(crate) struct Occurrence<'a> {
    pub(crate) environment: Option<&'a str>,
    pub(crate) level: Level,
    pub(crate) category: IssueCategory,
    pub(crate) route: Option<&'a str>,
}

/// `*` matches any run of characters; everything else matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn route_patterns() {
        assert!(glob("/api/*", "/api/users"));
        assert!(glob("/api/*", "/api/"));
        assert!(!glob("/api/*", "/apix"));
        assert!(glob("/users", "/users"));
        assert!(!glob("/users", "/users/1"));
        assert!(glob("*/edit", "/posts/1/edit"));
        assert!(glob("GET /*/items/*", "GET /a/items/b"));
        assert!(!glob("a*b*c", "acb"));
        assert!(glob("*", ""));
    }
}
