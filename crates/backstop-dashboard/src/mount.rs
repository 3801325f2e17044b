//! The dashboard mounted in an app: what the adapters share, so that the tower layer
//! and the actix middleware mount it the same way (the mount in their configuration,
//! its builder methods, and the answer off the async threads).

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

impl backstop_core::adapter::AppMount for Mount {
    fn for_client(client: &Client) -> Self {
        Mount::new(client)
    }

    fn at_start(&self) {
        let _ = self.dashboard();
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

/// [`answer`], on tokio's blocking pool (actix-web runs on tokio too), so the store's
/// queries keep off the async threads. A handler that panicked answers an empty 500.
pub async fn answer_blocking(
    dashboard: Dashboard,
    request: Request<Bytes>,
    client_ip: Option<IpAddr>,
    https: bool,
) -> Response<Bytes> {
    let answer =
        tokio::task::spawn_blocking(move || answer(&dashboard, request, client_ip, https)).await;
    answer.unwrap_or_else(|_| {
        let mut response = Response::new(Bytes::new());
        *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        response
    })
}

/// The builder methods that mount the dashboard, written once for both adapters:
/// expands, inside an adapter type's `impl` block, to `dashboard` and `no_dashboard`,
/// which set the [`Mount`] of its configuration (core's `AdapterConfig`) through the
/// type's own `fn configure(self, f) -> Self`.
#[doc(hidden)]
#[macro_export]
macro_rules! mount_builder {
    () => {
        /// Mounts the dashboard with this configuration (its path, token, environment)
        /// instead of the one from the environment variables. It is served only when
        /// the SQLite store is among the client's sinks.
        #[must_use]
        pub fn dashboard(self, config: $crate::DashboardConfig) -> Self {
            self.configure(|c| c.map_mount(|mount| mount.with_config(config)))
        }

        /// Serves no dashboard: its paths go to the app.
        #[must_use]
        pub fn no_dashboard(self) -> Self {
            self.configure(|c| c.map_mount($crate::Mount::off))
        }
    };
}
