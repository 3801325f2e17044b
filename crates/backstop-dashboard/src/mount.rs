//! The dashboard mounted in an app: what the adapters share, so that the tower layer
//! and the actix middleware mount it the same way.

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use backstop_core::Client;
use backstop_store::StoreReader;
use bytes::Bytes;
use http::{Request, Response};

use crate::access::ClientIp;
use crate::app::Dashboard;
use crate::config::DashboardConfig;

/// The dashboard an adapter mounts: over the client's SQLite store when it has one,
/// configured from the environment unless the builder says otherwise.
///
/// It is made on first use, once: in development with no token, that is when the
/// random token is made and the login URL printed. A clone shares it: axum clones the
/// layer's service for each request, so a clone is one reference count.
#[derive(Clone)]
pub struct Mount(Arc<Inner>);

struct Inner {
    client: Client,
    /// `None`: turned off on the builder.
    config: Option<DashboardConfig>,
    built: OnceLock<Option<Dashboard>>,
}

impl fmt::Debug for Mount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mount")
            .field("config", &self.0.config)
            .finish_non_exhaustive()
    }
}

impl Mount {
    /// The default mount: `BACKSTOP_DASHBOARD_TOKEN` and `BACKSTOP_DASHBOARD_URL`,
    /// the client's environment, under `/_backstop`.
    pub fn new(client: &Client) -> Mount {
        let config = DashboardConfig::from_env().environment(client.environment());
        Mount::with(client.clone(), Some(config))
    }

    fn with(client: Client, config: Option<DashboardConfig>) -> Mount {
        Mount(Arc::new(Inner {
            client,
            config,
            built: OnceLock::new(),
        }))
    }

    /// Mounts with this configuration instead.
    #[must_use]
    pub fn with_config(self, config: DashboardConfig) -> Mount {
        Mount::with(self.0.client.clone(), Some(config))
    }

    /// No dashboard: every path goes to the app.
    #[must_use]
    pub fn off(self) -> Mount {
        Mount::with(self.0.client.clone(), None)
    }

    /// The dashboard, when mounted and open: a store among the client's sinks, and a
    /// token (or development). The first call makes it and prints the login URL of a
    /// generated token on stderr.
    pub fn dashboard(&self) -> Option<&Dashboard> {
        let inner = &*self.0;
        inner
            .built
            .get_or_init(|| {
                let config = inner.config.clone()?;
                let reader = inner.client.shared::<StoreReader>()?;
                let client = inner.client.clone();
                let config = config.pipeline_stats(move || client.stats());
                let dashboard = Dashboard::new((*reader).clone(), config);
                if *dashboard.access() == crate::Access::Generated
                    && let Some(url) = dashboard.login_url()
                {
                    eprintln!("Backstop dashboard: {url}");
                }
                dashboard.is_enabled().then_some(dashboard)
            })
            .as_ref()
    }

    /// The dashboard, if it answers `path`. Cheap after the first call: a prefix test.
    pub fn claims(&self, path: &str) -> Option<&Dashboard> {
        self.dashboard().filter(|d| d.is_dashboard_path(path))
    }
}

/// Answers a request the dashboard claimed, with what only the server knows: the
/// client's address (for the rate limit on failed logins) and whether the connection
/// is https (for the cookie's `Secure`). Blocking: call it off the async threads.
pub fn answer(
    dashboard: &Dashboard,
    mut request: Request<Bytes>,
    client_ip: Option<IpAddr>,
    https: bool,
) -> Response<Bytes> {
    if let Some(ip) = client_ip {
        request.extensions_mut().insert(ClientIp(ip));
    }
    if https && request.uri().scheme().is_none() {
        let mut parts = request.uri().clone().into_parts();
        parts.scheme = Some(http::uri::Scheme::HTTPS);
        if parts.authority.is_none() {
            parts.authority = request
                .headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.parse().ok())
                .or_else(|| Some(http::uri::Authority::from_static("localhost")));
        }
        if let Ok(uri) = http::Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    dashboard.handle(request)
}
