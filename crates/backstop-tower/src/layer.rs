//! [`BackstopLayer`]: the one layer, and its builder.

use std::fmt;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::sync::Arc;

use backstop_core::{Client, User};
use backstop_core::{HttpOptions, PagePolicy};
use backstop_pages::ErrorPages;

use crate::service::BackstopService;

/// Resolves the user of a request from its parts (an auth extension, a header...).
pub type UserFrom = Arc<dyn Fn(&http::request::Parts) -> Option<User> + Send + Sync>;

/// The one layer: catches panics, records 5xx responses and sampled transactions, and
/// turns error responses into branded pages.
///
/// ```
/// use axum::{Router, routing::get};
/// use backstop_tower::BackstopLayer;
///
/// let backstop = backstop_core::init(backstop_core::Options::new()).unwrap();
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .layer(BackstopLayer::new(&backstop));
/// # drop(app);
/// ```
#[derive(Clone)]
pub struct BackstopLayer {
    pub(crate) shared: Arc<Shared>,
}

#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) http: HttpOptions,
    pub(crate) pages: ErrorPages,
    pub(crate) user_from: Option<UserFrom>,
}

impl fmt::Debug for BackstopLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackstopLayer")
            .field("client", &self.shared.client)
            .field("http", &self.shared.http)
            .field("user_from", &self.shared.user_from.is_some())
            .finish_non_exhaustive()
    }
}

impl BackstopLayer {
    /// A layer reporting to `client` (the [`Backstop`](backstop_core::BackstopGuard) guard
    /// derefs to it), with the default HTTP options and pages. The debug page is on
    /// when the client's environment is `development`.
    pub fn new(client: &Client) -> Self {
        let debug = client.environment() == "development";
        BackstopLayer {
            shared: Arc::new(Shared {
                client: client.clone(),
                http: HttpOptions::new(),
                pages: ErrorPages::default().debug(debug),
                user_from: None,
            }),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut Shared)) -> Self {
        f(Arc::make_mut(&mut self.shared));
        self
    }

    /// Replaces all HTTP options at once.
    #[must_use]
    pub fn http(self, http: HttpOptions) -> Self {
        self.with(|s| s.http = http)
    }

    /// The pages visitors see (theme, overrides, debug page).
    #[must_use]
    pub fn pages(self, pages: ErrorPages) -> Self {
        self.with(|s| s.pages = pages)
    }

    /// Resolves the user per request, from the request's parts.
    ///
    /// ```
    /// # use backstop_tower::BackstopLayer;
    /// # let backstop = backstop_core::init(backstop_core::Options::new()).unwrap();
    /// #[derive(Clone)]
    /// struct Auth { user_id: u64 }
    ///
    /// let layer = BackstopLayer::new(&backstop).user_from(|parts| {
    ///     let auth = parts.extensions.get::<Auth>()?;
    ///     Some(backstop_core::User::with_id(auth.user_id.to_string()))
    /// });
    /// # drop(layer);
    /// ```
    #[must_use]
    pub fn user_from(
        self,
        f: impl Fn(&http::request::Parts) -> Option<User> + Send + Sync + 'static,
    ) -> Self {
        self.with(|s| s.user_from = Some(Arc::new(f)))
    }

    /// Which statuses are recorded as errors (default: all 5xx).
    #[must_use]
    pub fn capture_statuses(self, ranges: impl IntoIterator<Item = RangeInclusive<u16>>) -> Self {
        self.with(|s| s.http = s.http.clone().capture_statuses(ranges))
    }

    /// Which error responses become branded pages (default: empty and plain-text ones).
    #[must_use]
    pub fn page_policy(self, policy: PagePolicy) -> Self {
        self.with(|s| s.http = s.http.clone().page_policy(policy))
    }

    /// Trusts a proxy's `X-Forwarded-For` / `Forwarded` (an address or a network).
    #[must_use]
    pub fn trust_proxy(self, net: impl Into<backstop_core::IpNet>) -> Self {
        let net = net.into();
        self.with(|s| s.http = s.http.clone().trust_proxy(net))
    }

    /// Trusts a single proxy address.
    #[must_use]
    pub fn trust_proxy_ip(self, ip: IpAddr) -> Self {
        self.trust_proxy(ip)
    }

    /// Captures JSON and form request bodies up to `max_bytes` (axum bodies).
    #[must_use]
    pub fn capture_bodies(self, max_bytes: usize) -> Self {
        self.with(|s| s.http = s.http.clone().capture_bodies(max_bytes))
    }
}

impl<S> tower_layer::Layer<S> for BackstopLayer {
    type Service = BackstopService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BackstopService {
            inner,
            shared: self.shared.clone(),
        }
    }
}
