//! Configuration: [`Options`], read from code or the environment, validated once by
//! [`init`](crate::init).
//!
//! ```
//! use backstop_core::Options;
//!
//! let options = Options::new()
//!     .environment("staging")
//!     .release("shop@1.4.2")
//!     .traces_sample_rate(0.2)
//!     .ignore_status(404);
//! # drop(options);
//! ```
//!
//! Nothing is checked until `init`: a bad value there is an [`InitError`] naming the
//! setting, never a panic.

pub(crate) mod secrets;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::protocol::{Breadcrumb, Event, Transaction};
use crate::sink::Sink;

/// Decides, per transaction, the probability of keeping it (0.0 to 1.0).
pub(crate) type TracesSampler = Arc<dyn Fn(&SamplingContext<'_>) -> f32 + Send + Sync>;
/// Rewrites or drops (`None`) an event just before the sinks see it.
pub(crate) type BeforeSend = Arc<dyn Fn(Event) -> Option<Event> + Send + Sync>;
/// Rewrites or drops (`None`) a transaction just before the sinks see it.
pub(crate) type BeforeSendTransaction =
    Arc<dyn Fn(Transaction) -> Option<Transaction> + Send + Sync>;
/// Rewrites or drops (`None`) a breadcrumb as it is added.
pub(crate) type BeforeBreadcrumb = Arc<dyn Fn(Breadcrumb) -> Option<Breadcrumb> + Send + Sync>;

/// What a [`TracesSampler`] sees when it decides whether to keep a transaction.
#[derive(Debug, Clone, Copy)]
pub struct SamplingContext<'a> {
    /// The transaction name (`GET /users/{id}`).
    pub name: &'a str,
    /// The operation (`http.server`).
    pub op: &'a str,
    /// The HTTP method, for requests.
    pub method: Option<&'a str>,
    /// The matched route, for requests that matched one.
    pub route: Option<&'a str>,
    /// The request headers, for requests.
    pub headers: Option<&'a http::HeaderMap>,
    /// The decision of the caller, when the trace was continued from a header.
    pub parent_sampled: Option<bool>,
}

impl<'a> SamplingContext<'a> {
    /// A context with just a name and an op.
    pub fn new(name: &'a str, op: &'a str) -> Self {
        SamplingContext {
            name,
            op,
            method: None,
            route: None,
            headers: None,
            parent_sampled: None,
        }
    }
}

/// Everything Backstop can be told. Build it with [`Options::new`] or
/// [`Options::from_env`], then hand it to [`init`](crate::init).
#[must_use]
pub struct Options {
    pub(crate) dsn: Option<String>,
    pub(crate) environment: Option<String>,
    pub(crate) release: Option<String>,
    pub(crate) server_name: Option<String>,
    pub(crate) sample_rate: RawRate,
    pub(crate) traces_sample_rate: RawRate,
    pub(crate) traces_sampler: Option<TracesSampler>,
    pub(crate) send_default_pii: bool,
    /// An unparseable `BACKSTOP_SEND_DEFAULT_PII`, kept for `init` to reject.
    pub(crate) send_default_pii_text: Option<String>,
    pub(crate) max_breadcrumbs: usize,
    pub(crate) max_spans: usize,
    pub(crate) detectors: Option<Thresholds>,
    pub(crate) before_send: Option<BeforeSend>,
    pub(crate) before_send_transaction: Option<BeforeSendTransaction>,
    pub(crate) before_breadcrumb: Option<BeforeBreadcrumb>,
    pub(crate) ignore_errors: Vec<String>,
    pub(crate) ignore_statuses: Vec<u16>,
    pub(crate) in_app_include: Vec<String>,
    pub(crate) in_app_exclude: Vec<String>,
    pub(crate) scrub_keys: Vec<String>,
    pub(crate) scrub_headers: Vec<String>,
    pub(crate) propagation_targets: Option<Vec<String>>,
    pub(crate) queue_capacity: usize,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) sinks: Vec<Box<dyn Sink>>,
    pub(crate) console: Option<bool>,
    pub(crate) install_panic_hook: bool,
}

/// A rate as given: a number, or text from the environment still to be parsed.
#[derive(Debug, Clone)]
pub(crate) enum RawRate {
    Value(f64),
    Text(String),
}

impl Default for Options {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("dsn", &self.dsn.as_ref().map(|_| "[set]"))
            .field("environment", &self.environment)
            .field("release", &self.release)
            .field("server_name", &self.server_name)
            .field("sample_rate", &self.sample_rate)
            .field("traces_sample_rate", &self.traces_sample_rate)
            .field("traces_sampler", &self.traces_sampler.is_some())
            .field("send_default_pii", &self.send_default_pii)
            .field("max_breadcrumbs", &self.max_breadcrumbs)
            .field("max_spans", &self.max_spans)
            .field("detectors", &self.detectors)
            .field("ignore_errors", &self.ignore_errors)
            .field("ignore_statuses", &self.ignore_statuses)
            .field("queue_capacity", &self.queue_capacity)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("sinks", &self.sinks.len())
            .finish_non_exhaustive()
    }
}

/// The default number of breadcrumbs a scope keeps.
pub const DEFAULT_MAX_BREADCRUMBS: usize = 100;
/// The default number of spans a transaction keeps.
pub const DEFAULT_MAX_SPANS: usize = 1000;
/// The default capacity of the queue between request handling and the worker.
pub const DEFAULT_QUEUE_CAPACITY: usize = 4096;
/// How long flushing on shutdown may take by default.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

impl Options {
    /// Defaults: no DSN, errors all kept, no transactions, PII off, 100 breadcrumbs,
    /// a queue of 4096, a 2 s shutdown.
    pub fn new() -> Self {
        Options {
            dsn: None,
            environment: None,
            release: None,
            server_name: None,
            sample_rate: RawRate::Value(1.0),
            traces_sample_rate: RawRate::Value(0.0),
            traces_sampler: None,
            send_default_pii: false,
            send_default_pii_text: None,
            max_breadcrumbs: DEFAULT_MAX_BREADCRUMBS,
            max_spans: DEFAULT_MAX_SPANS,
            detectors: Some(Thresholds::default()),
            before_send: None,
            before_send_transaction: None,
            before_breadcrumb: None,
            ignore_errors: Vec::new(),
            ignore_statuses: Vec::new(),
            in_app_include: Vec::new(),
            in_app_exclude: Vec::new(),
            scrub_keys: Vec::new(),
            scrub_headers: Vec::new(),
            propagation_targets: None,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            sinks: Vec::new(),
            console: None,
            install_panic_hook: true,
        }
    }

    /// Defaults, overridden by the environment:
    ///
    /// | variable | setting |
    /// |---|---|
    /// | `BACKSTOP_DSN`, else `SENTRY_DSN` | [`dsn`](Self::dsn) |
    /// | `BACKSTOP_ENVIRONMENT`, else `SENTRY_ENVIRONMENT` | [`environment`](Self::environment) |
    /// | `BACKSTOP_RELEASE`, else `SENTRY_RELEASE` | [`release`](Self::release) |
    /// | `BACKSTOP_SERVER_NAME` | [`server_name`](Self::server_name) |
    /// | `BACKSTOP_SAMPLE_RATE` | [`sample_rate`](Self::sample_rate) |
    /// | `BACKSTOP_TRACES_SAMPLE_RATE`, else `SENTRY_TRACES_SAMPLE_RATE` | [`traces_sample_rate`](Self::traces_sample_rate) |
    /// | `BACKSTOP_SEND_DEFAULT_PII` (`true`/`false`/`1`/`0`) | [`send_default_pii`](Self::send_default_pii) |
    ///
    /// Empty variables count as unset. Values are checked by `init`, like any other.
    pub fn from_env() -> Self {
        Self::from_env_with(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `get` (for tests,
    /// or a configuration source of the team's own).
    pub fn from_env_with(get: impl Fn(&str) -> Option<String>) -> Self {
        let var = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| get(n).filter(|v| !v.trim().is_empty()))
        };
        let mut options = Options::new();
        options.dsn = var(&["BACKSTOP_DSN", "SENTRY_DSN"]);
        options.environment = var(&["BACKSTOP_ENVIRONMENT", "SENTRY_ENVIRONMENT"]);
        options.release = var(&["BACKSTOP_RELEASE", "SENTRY_RELEASE"]);
        options.server_name = var(&["BACKSTOP_SERVER_NAME"]);
        if let Some(rate) = var(&["BACKSTOP_SAMPLE_RATE"]) {
            options.sample_rate = RawRate::Text(rate);
        }
        if let Some(rate) = var(&["BACKSTOP_TRACES_SAMPLE_RATE", "SENTRY_TRACES_SAMPLE_RATE"]) {
            options.traces_sample_rate = RawRate::Text(rate);
        }
        if let Some(pii) = var(&["BACKSTOP_SEND_DEFAULT_PII"]) {
            match pii.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => options.send_default_pii = true,
                "0" | "false" | "no" | "off" => options.send_default_pii = false,
                // Kept for init to reject with the setting's name.
                _ => options.send_default_pii_text = Some(pii),
            }
        }
        options
    }

    /// The Sentry DSN events are exported to (`https://KEY@host/PROJECT`). Without one,
    /// nothing leaves the process.
    pub fn dsn(mut self, dsn: impl Into<String>) -> Self {
        self.dsn = Some(dsn.into());
        self
    }

    /// The environment (`production`, `staging`). Defaults to `development` in debug
    /// builds and `production` in release builds.
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }

    /// The release (`shop@1.4.2`, or a commit), used to find regressions.
    pub fn release(mut self, release: impl Into<String>) -> Self {
        self.release = Some(release.into());
        self
    }

    /// The host name recorded on events. Defaults to the `HOSTNAME` variable, if set.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// The share of error events kept, 0.0 to 1.0 (default 1.0).
    pub fn sample_rate(mut self, rate: f64) -> Self {
        self.sample_rate = RawRate::Value(rate);
        self
    }

    /// The share of requests recorded as transactions, 0.0 to 1.0 (default 0.0).
    pub fn traces_sample_rate(mut self, rate: f64) -> Self {
        self.traces_sample_rate = RawRate::Value(rate);
        self
    }

    /// Decides per transaction, overriding `traces_sample_rate`. Returns the probability
    /// of keeping it. A sampler that panics keeps nothing (and is counted).
    pub fn traces_sampler(
        mut self,
        sampler: impl Fn(&SamplingContext<'_>) -> f32 + Send + Sync + 'static,
    ) -> Self {
        self.traces_sampler = Some(Arc::new(sampler));
        self
    }

    /// Whether to keep personal data: user emails and IPs, cookies, secret headers and
    /// keys. Off by default.
    pub fn send_default_pii(mut self, on: bool) -> Self {
        self.send_default_pii = on;
        self
    }

    /// How many breadcrumbs a scope keeps, the oldest dropped first (default 100).
    pub fn max_breadcrumbs(mut self, max: usize) -> Self {
        self.max_breadcrumbs = max;
        self
    }

    /// How many spans one transaction keeps (default 1000); the rest are counted.
    pub fn max_spans(mut self, max: usize) -> Self {
        self.max_spans = max;
        self
    }

    /// The thresholds of the performance-problem detectors (N+1, duplicate, slow and
    /// too many queries), which run on the worker over every sampled transaction.
    ///
    /// ```
    /// use std::time::Duration;
    /// use backstop_core::{Options, detect::Thresholds};
    ///
    /// // In development: flag every N+1, however fast the database.
    /// let options = Options::new().problem_thresholds(Thresholds {
    ///     n_plus_one_duration: Duration::ZERO,
    ///     ..Thresholds::default()
    /// });
    /// # drop(options);
    /// ```
    pub fn problem_thresholds(mut self, thresholds: Thresholds) -> Self {
        self.detectors = Some(thresholds);
        self
    }

    /// Where outgoing calls carry the trace headers (`traceparent`, `sentry-trace`):
    /// only to URLs that one of these regular expressions matches, searched anywhere
    /// in the URL (scheme, host, port and path), as Sentry's
    /// `tracePropagationTargets`. A host name matches the URLs on that host. By
    /// default every call carries them; an empty list keeps trace ids in the service.
    /// A pattern that does not compile is an [`InitError`] naming
    /// `trace_propagation_targets`.
    ///
    /// ```
    /// use backstop_core::Options;
    ///
    /// let options = Options::new()
    ///     .trace_propagation_targets(["api.internal.example", r"^http://127\.0\.0\.1:\d+/"]);
    /// ```
    pub fn trace_propagation_targets<I, S>(mut self, targets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.propagation_targets = Some(targets.into_iter().map(Into::into).collect());
        self
    }

    /// Turns the performance-problem detectors off (or back on, with their defaults).
    pub fn detect_problems(mut self, enabled: bool) -> Self {
        self.detectors = enabled.then(|| self.detectors.take().unwrap_or_default());
        self
    }

    /// Rewrites or drops each event, on the worker thread, after scrubbing.
    pub fn before_send(
        mut self,
        f: impl Fn(Event) -> Option<Event> + Send + Sync + 'static,
    ) -> Self {
        self.before_send = Some(Arc::new(f));
        self
    }

    /// Rewrites or drops each transaction, on the worker thread, after scrubbing.
    pub fn before_send_transaction(
        mut self,
        f: impl Fn(Transaction) -> Option<Transaction> + Send + Sync + 'static,
    ) -> Self {
        self.before_send_transaction = Some(Arc::new(f));
        self
    }

    /// Rewrites or drops each breadcrumb as it is added.
    pub fn before_breadcrumb(
        mut self,
        f: impl Fn(Breadcrumb) -> Option<Breadcrumb> + Send + Sync + 'static,
    ) -> Self {
        self.before_breadcrumb = Some(Arc::new(f));
        self
    }

    /// Drops errors of this type: the full path (`std::io::Error`) or the bare name
    /// (`Error`), matched against every exception of the event.
    pub fn ignore_error(mut self, type_name: impl Into<String>) -> Self {
        self.ignore_errors.push(type_name.into());
        self
    }

    /// Never records an error event for responses with this status.
    pub fn ignore_status(mut self, status: u16) -> Self {
        self.ignore_statuses.push(status);
        self
    }

    /// Frames whose path starts with this prefix are the application's (`in_app`), even
    /// if they would be excluded otherwise.
    pub fn in_app_include(mut self, prefix: impl Into<String>) -> Self {
        self.in_app_include.push(prefix.into());
        self
    }

    /// Frames whose path starts with this prefix are a library's, not the application's.
    pub fn in_app_exclude(mut self, prefix: impl Into<String>) -> Self {
        self.in_app_exclude.push(prefix.into());
        self
    }

    /// Adds a key pattern to scrub (matched case-insensitively as a substring) in query
    /// strings, bodies, extra data and contexts.
    pub fn scrub_key(mut self, key: impl Into<String>) -> Self {
        self.scrub_keys.push(key.into().to_ascii_lowercase());
        self
    }

    /// Adds a header whose value is always filtered.
    pub fn scrub_header(mut self, name: impl Into<String>) -> Self {
        self.scrub_headers.push(name.into().to_ascii_lowercase());
        self
    }

    /// The capacity of the queue between request handling and the worker, in messages
    /// (default 4096). A full queue drops and counts; it never blocks.
    ///
    /// An event is a message. Transactions travel in batches, one per thread, of up to
    /// `capacity / 256` (at most 16; a queue under 512 sends each alone). A batch that
    /// does not fill is collected by the worker within 10 ms.
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity;
        self
    }

    /// How long dropping the [`BackstopGuard`](crate::BackstopGuard) may wait for the queue
    /// to drain (default 2 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Adds a sink: where processed events and transactions go (the SQLite store, the
    /// Sentry exporter, a test capture...).
    pub fn sink(mut self, sink: impl Sink) -> Self {
        self.sinks.push(Box::new(sink));
        self
    }

    /// The DSN as configured (by [`dsn`](Self::dsn) or the environment), parsed: `None`
    /// when none is set, an error naming `dsn` when it is malformed. `init` checks it
    /// the same way.
    pub fn parsed_dsn(&self) -> Result<Option<Dsn>, InitError> {
        match self.dsn.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(text) => text
                .parse::<Dsn>()
                .map(Some)
                .map_err(|e| invalid("dsn", e.to_string())),
        }
    }

    /// The shutdown timeout as configured: what a sink's own final flush is bounded by.
    pub fn configured_shutdown_timeout(&self) -> Duration {
        self.shutdown_timeout
    }

    /// The first sink of type `S` added so far, if any.
    pub fn find_sink<S: Sink>(&self) -> Option<&S> {
        self.sinks
            .iter()
            .find_map(|sink| (&**sink as &dyn std::any::Any).downcast_ref::<S>())
    }

    /// Whether to print a line per event to stderr. By default the console is used
    /// only when no other sink is configured, so nothing is lost silently.
    pub fn console(mut self, on: bool) -> Self {
        self.console = Some(on);
        self
    }

    /// Whether `init` installs the panic hook (default true). Without it, panics caught
    /// by the adapters are still recorded, but without a backtrace.
    pub fn install_panic_hook(mut self, on: bool) -> Self {
        self.install_panic_hook = on;
        self
    }
}

/// Thresholds for the detectors ([`crate::detect`]), set with
/// [`Options::problem_thresholds`].
#[derive(Debug, Clone)]
pub struct Thresholds {
    /// N+1: at least this many repeats of one normalised query. Default 5. Values
    /// below 2 count as 2: a repeat needs two queries.
    pub n_plus_one_count: usize,
    /// N+1: ... taking at least this long in total. Default 50 ms; zero finds every
    /// run long enough (the development setting).
    pub n_plus_one_duration: Duration,
    /// Duplicates: the same statement at least this many times. Default 2. Values
    /// below 2 count as 2.
    pub duplicate_count: usize,
    /// Slow query: one query taking at least this long. Default 500 ms. Zero makes
    /// every query slow.
    pub slow_query: Duration,
    /// Too many queries: at least this many in one request. Default 50. Zero counts
    /// as 1: a transaction without queries never has too many.
    pub too_many_queries: usize,
    /// N+1 API calls: at least this many calls to one normalised URL in a row.
    /// Default 5. Values below 2 count as 2.
    pub n_plus_one_calls: usize,
    /// Slow external call: one outgoing call taking at least this long. Default
    /// 500 ms.
    pub slow_call: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            n_plus_one_count: 5,
            n_plus_one_duration: Duration::from_millis(50),
            duplicate_count: 2,
            slow_query: Duration::from_millis(500),
            too_many_queries: 50,
            n_plus_one_calls: 5,
            slow_call: Duration::from_millis(500),
        }
    }
}

/// Why [`init`](crate::init) refused the options.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// A setting has a value it can't take. The message names the setting.
    #[error("invalid `{setting}`: {reason}")]
    InvalidSetting {
        /// The setting's name, as the builder method and the docs spell it.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The worker thread could not be started.
    #[error("could not start the Backstop worker thread: {0}")]
    Worker(#[source] std::io::Error),
}

impl InitError {
    /// The setting at fault, for [`InitError::InvalidSetting`].
    pub fn setting(&self) -> Option<&'static str> {
        match self {
            InitError::InvalidSetting { setting, .. } => Some(setting),
            InitError::Worker(_) => None,
        }
    }
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> InitError {
    InitError::InvalidSetting {
        setting,
        reason: reason.into(),
    }
}

/// Options after `init` has checked them; what the running client reads.
pub(crate) struct Settings {
    pub(crate) dsn: Option<Dsn>,
    pub(crate) environment: String,
    pub(crate) release: Option<String>,
    pub(crate) server_name: Option<String>,
    pub(crate) sample_rate: f64,
    pub(crate) traces_sample_rate: f64,
    pub(crate) traces_sampler: Option<TracesSampler>,
    pub(crate) send_default_pii: bool,
    pub(crate) max_breadcrumbs: usize,
    pub(crate) max_spans: usize,
    pub(crate) detectors: Option<Thresholds>,
    pub(crate) before_send: Option<BeforeSend>,
    pub(crate) before_send_transaction: Option<BeforeSendTransaction>,
    pub(crate) before_breadcrumb: Option<BeforeBreadcrumb>,
    pub(crate) ignore_errors: Vec<String>,
    pub(crate) ignore_statuses: Vec<u16>,
    pub(crate) in_app_include: Vec<String>,
    pub(crate) in_app_exclude: Vec<String>,
    pub(crate) scrub: secrets::Scrubber,
    /// Where outgoing calls carry trace headers; `None` is everywhere.
    pub(crate) propagation_targets: Option<regex::RegexSet>,
    pub(crate) shutdown_timeout: Duration,
}

impl Settings {
    /// Whether an outgoing call to `url` carries the trace headers.
    pub(crate) fn propagates_to(&self, url: &str) -> bool {
        self.propagation_targets
            .as_ref()
            .is_none_or(|targets| targets.is_match(url))
    }
}

// The callbacks are only ever called under `catch_unwind`, and a panic in one leaves no
// shared state half-changed (the result is discarded and counted), so the settings are
// safe to observe across an unwind: users can `catch_unwind` around scoped code.
impl std::panic::RefUnwindSafe for Settings {}
impl std::panic::UnwindSafe for Settings {}

/// What `init` needs besides the settings: the parts that go to the worker.
pub(crate) struct Validated {
    pub(crate) settings: Settings,
    pub(crate) sinks: Vec<Box<dyn Sink>>,
    pub(crate) console: Option<bool>,
    pub(crate) install_panic_hook: bool,
    pub(crate) queue_capacity: usize,
}

fn parse_rate(setting: &'static str, raw: &RawRate) -> Result<f64, InitError> {
    let value = match raw {
        RawRate::Value(v) => *v,
        RawRate::Text(text) => text
            .trim()
            .parse::<f64>()
            .map_err(|_| invalid(setting, format!("{text:?} is not a number")))?,
    };
    if !(0.0..=1.0).contains(&value) {
        return Err(invalid(setting, format!("{value} is outside 0..=1")));
    }
    Ok(value)
}

impl Options {
    /// Checks every setting; splits off the sinks for the worker.
    pub(crate) fn validate(mut self) -> Result<Validated, InitError> {
        let dsn = self.parsed_dsn()?;
        let sample_rate = parse_rate("sample_rate", &self.sample_rate)?;
        let traces_sample_rate = parse_rate("traces_sample_rate", &self.traces_sample_rate)?;
        if self.queue_capacity == 0 {
            return Err(invalid("queue_capacity", "must be at least 1"));
        }
        if self.max_spans == 0 {
            return Err(invalid("max_spans", "must be at least 1"));
        }
        if let Some(bad) = &self.send_default_pii_text {
            return Err(invalid(
                "send_default_pii",
                format!("{bad:?} is not true or false (BACKSTOP_SEND_DEFAULT_PII)"),
            ));
        }
        if let Some(bad) = self
            .ignore_statuses
            .iter()
            .find(|s| !(100..=999).contains(*s))
        {
            return Err(invalid(
                "ignore_status",
                format!("{bad} is not an HTTP status"),
            ));
        }
        let environment = match self.environment.take().map(|e| e.trim().to_owned()) {
            Some(e) if e.is_empty() => return Err(invalid("environment", "must not be empty")),
            Some(e) => e,
            None if cfg!(debug_assertions) => "development".to_owned(),
            None => "production".to_owned(),
        };
        let server_name = self
            .server_name
            .take()
            .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()));
        let scrub = secrets::Scrubber::new(
            self.send_default_pii,
            std::mem::take(&mut self.scrub_keys),
            std::mem::take(&mut self.scrub_headers),
        )
        .map_err(|why| invalid("scrub_key", why))?;
        let propagation_targets = match self.propagation_targets.take() {
            None => None,
            Some(targets) => {
                for target in &targets {
                    regex::Regex::new(target).map_err(|why| {
                        invalid(
                            "trace_propagation_targets",
                            format!("{target:?} is not a regular expression: {why}"),
                        )
                    })?;
                }
                Some(
                    regex::RegexSet::new(&targets)
                        .map_err(|why| invalid("trace_propagation_targets", why.to_string()))?,
                )
            }
        };
        let settings = Settings {
            dsn,
            environment,
            release: self.release.take(),
            server_name,
            sample_rate,
            traces_sample_rate,
            traces_sampler: self.traces_sampler.take(),
            send_default_pii: self.send_default_pii,
            max_breadcrumbs: self.max_breadcrumbs,
            max_spans: self.max_spans,
            detectors: self.detectors.take(),
            before_send: self.before_send.take(),
            before_send_transaction: self.before_send_transaction.take(),
            before_breadcrumb: self.before_breadcrumb.take(),
            ignore_errors: std::mem::take(&mut self.ignore_errors),
            ignore_statuses: std::mem::take(&mut self.ignore_statuses),
            in_app_include: std::mem::take(&mut self.in_app_include),
            in_app_exclude: std::mem::take(&mut self.in_app_exclude),
            scrub,
            propagation_targets,
            shutdown_timeout: self.shutdown_timeout,
        };
        Ok(Validated {
            settings,
            sinks: std::mem::take(&mut self.sinks),
            console: self.console,
            install_panic_hook: self.install_panic_hook,
            queue_capacity: self.queue_capacity,
        })
    }
}

// ---------------------------------------------------------------------------------------
// DSN

/// A parsed Sentry DSN: `{scheme}://{public_key}[:{secret_key}]@{host}[:{port}]/{path}{project_id}`.
#[derive(Clone, PartialEq, Eq)]
pub struct Dsn {
    scheme: String,
    public_key: String,
    secret_key: Option<String>,
    host: String,
    port: Option<u16>,
    path: String,
    project_id: String,
}

impl fmt::Debug for Dsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key is a credential: never print it.
        write!(
            f,
            "Dsn({}://[key]@{}/{})",
            self.scheme, self.host, self.project_id
        )
    }
}

/// Why a DSN was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidDsn(String);

impl std::str::FromStr for Dsn {
    type Err = InvalidDsn;

    fn from_str(s: &str) -> Result<Self, InvalidDsn> {
        let url = url::Url::parse(s).map_err(|e| InvalidDsn(format!("not a URL ({e})")))?;
        let scheme = url.scheme();
        if scheme != "http" && scheme != "https" {
            return Err(InvalidDsn(format!(
                "the scheme must be http or https, not {scheme:?}"
            )));
        }
        if url.username().is_empty() {
            return Err(InvalidDsn(
                "the public key (before the @) is missing".into(),
            ));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| InvalidDsn("the host is missing".into()))?;
        let path = url.path().trim_end_matches('/');
        let (prefix, project_id) = path.rsplit_once('/').unwrap_or(("", path));
        if project_id.is_empty() || !project_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidDsn(
                "the project id (the last path segment) must be a number".into(),
            ));
        }
        Ok(Dsn {
            scheme: scheme.to_owned(),
            public_key: url.username().to_owned(),
            secret_key: url.password().map(str::to_owned),
            host: host.to_owned(),
            port: url.port(),
            path: format!("{prefix}/"),
            project_id: project_id.to_owned(),
        })
    }
}

impl Dsn {
    /// The public key.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// The (deprecated) secret key, if the DSN has one.
    pub fn secret_key(&self) -> Option<&str> {
        self.secret_key.as_deref()
    }

    /// The host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The project id.
    pub fn project_id(&self) -> &str {
        &self.project_id
    }

    /// Where envelopes are posted: `{scheme}://{host}[:{port}]{path}api/{project}/envelope/`.
    pub fn envelope_url(&self) -> String {
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        format!(
            "{}://{}{}{}api/{}/envelope/",
            self.scheme, self.host, port, self.path, self.project_id
        )
    }
}
