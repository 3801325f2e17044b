//! What a dashboard is configured with, and whether it is open at all.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use backstop_core::Stats;

/// The environment variable that holds the dashboard's token.
pub const TOKEN_ENV: &str = "BACKSTOP_DASHBOARD_TOKEN";
/// The environment variable that holds the dashboard's public base URL.
pub const URL_ENV: &str = "BACKSTOP_DASHBOARD_URL";
/// Where the dashboard is mounted unless told otherwise.
pub const DEFAULT_MOUNT_PATH: &str = "/_backstop";

/// Reads the pipeline's counters for the health page.
pub type StatsSource = Arc<dyn Fn() -> Stats + Send + Sync>;

/// How a [`Dashboard`](crate::Dashboard) is set up.
///
/// ```
/// use std::time::Duration;
/// use backstop_dashboard::DashboardConfig;
///
/// let config = DashboardConfig::new()
///     .token("a-long-random-token")
///     .environment("production")
///     .mount_path("/ops/backstop")
///     .apdex_threshold(Duration::from_millis(300));
/// # let _ = config;
/// ```
#[derive(Clone)]
#[must_use]
pub struct DashboardConfig {
    pub(crate) token: Option<String>,
    pub(crate) mount_path: String,
    pub(crate) environment: String,
    pub(crate) apdex_threshold: Duration,
    pub(crate) allowed_hosts: Vec<String>,
    pub(crate) base_url: Option<String>,
    pub(crate) stats: Option<StatsSource>,
}

impl fmt::Debug for DashboardConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a secret: never printed.
        f.debug_struct("DashboardConfig")
            .field("token", &self.token.as_ref().map(|_| "[Filtered]"))
            .field("mount_path", &self.mount_path)
            .field("environment", &self.environment)
            .field("apdex_threshold", &self.apdex_threshold)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            token: None,
            mount_path: DEFAULT_MOUNT_PATH.to_owned(),
            environment: "production".to_owned(),
            apdex_threshold: Duration::from_millis(500),
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()],
            base_url: None,
            stats: None,
        }
    }
}

impl DashboardConfig {
    /// No token, mounted at `/_backstop`, environment `production` (so closed until a
    /// token is set), Apdex threshold 500 ms, loopback hosts allowed.
    pub fn new() -> Self {
        Self::default()
    }

    /// The defaults, with the token from `BACKSTOP_DASHBOARD_TOKEN`, the base URL from
    /// `BACKSTOP_DASHBOARD_URL` and the environment from `BACKSTOP_ENVIRONMENT`, when
    /// they are set and not empty.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let defaults = Self::default();
        DashboardConfig {
            token: var(TOKEN_ENV),
            base_url: var(URL_ENV),
            environment: var("BACKSTOP_ENVIRONMENT").unwrap_or(defaults.environment.clone()),
            ..defaults
        }
    }

    /// The token that opens the dashboard. An empty token is no token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        let token = token.into();
        self.token = (!token.is_empty()).then_some(token);
        self
    }

    /// Where the dashboard is mounted (default `/_backstop`). A trailing `/` is
    /// dropped; a missing leading one added.
    pub fn mount_path(mut self, path: impl Into<String>) -> Self {
        let path = path.into();
        let trimmed = path.trim_end_matches('/');
        self.mount_path = if trimmed.starts_with('/') {
            trimmed.to_owned()
        } else {
            format!("/{trimmed}")
        };
        self
    }

    /// The environment the app runs in. In `development` a dashboard with no token
    /// makes a random one; anywhere else it stays off.
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = environment.into();
        self
    }

    /// The response time a satisfied user waits at most (Apdex's T; default 500 ms).
    pub fn apdex_threshold(mut self, threshold: Duration) -> Self {
        self.apdex_threshold = threshold.max(Duration::from_millis(1));
        self
    }

    /// Adds a host name (with `:port` or without) the standalone server answers to;
    /// loopback names are allowed already. Guards against DNS rebinding.
    pub fn allowed_host(mut self, host: impl Into<String>) -> Self {
        self.allowed_hosts.push(host.into().to_ascii_lowercase());
        self
    }

    /// The dashboard's public base URL (`https://ops.example.com/_backstop`), for the
    /// login URL and links sent elsewhere.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into().trim_end_matches('/').to_owned());
        self
    }

    /// Where the health page reads the pipeline's counters (usually
    /// `move || client.stats()`).
    pub fn pipeline_stats(mut self, stats: impl Fn() -> Stats + Send + Sync + 'static) -> Self {
        self.stats = Some(Arc::new(stats));
        self
    }
}

/// Whether the dashboard is open, and to whom.
#[derive(Clone, PartialEq, Eq)]
pub enum Access {
    /// Open with the configured token.
    Token,
    /// Open with a token made at start (development with none configured); print the
    /// login URL so the developer can use it.
    Generated,
    /// Off: no token outside development. Every path answers 404.
    Off,
}

impl fmt::Debug for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::Token => "Token",
            Access::Generated => "Generated",
            Access::Off => "Off",
        })
    }
}
