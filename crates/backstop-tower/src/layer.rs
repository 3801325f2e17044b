//! [`BackstopLayer`]: the one layer, and its builder.

use std::fmt;
use std::sync::Arc;

use backstop_core::Client;
use backstop_core::adapter::{AdapterConfig, AppMount};
use backstop_pages::ErrorPages;

use crate::service::BackstopService;

/// Resolves the user of a request from its parts (an auth extension, a header...).
pub type UserFrom = backstop_core::adapter::UserFrom<http::request::Parts>;

/// How the layer is configured (the builder methods of [`BackstopLayer`] set it).
pub(crate) type Config = AdapterConfig<http::request::Parts, ErrorPages, Mount>;

/// The dashboard, mounted with the feature.
#[cfg(feature = "dashboard")]
type Mount = backstop_dashboard::Mount;
#[cfg(not(feature = "dashboard"))]
type Mount = ();

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
    pub(crate) config: Arc<Config>,
}

impl fmt::Debug for BackstopLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BackstopLayer").field(&self.config).finish()
    }
}

impl BackstopLayer {
    /// A layer reporting to `client` (the [`Backstop`](backstop_core::BackstopGuard) guard
    /// derefs to it), with the default HTTP options and pages. The debug page is on
    /// when the client's environment is `development`, for visitors on this machine.
    pub fn new(client: &Client) -> Self {
        BackstopLayer {
            config: Arc::new(Config::new(client, ErrorPages::default())),
        }
    }

    fn configure(mut self, f: impl FnOnce(Config) -> Config) -> Self {
        self.config = Arc::new(f(Arc::unwrap_or_clone(self.config)));
        self
    }

    backstop_core::adapter_builder! {
        pages: ErrorPages,
        /// Resolves the user per request, from the request's parts. A panic in `f` is
        /// contained: the request goes on without a user.
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
        user_from: http::request::Parts,
    }

    #[cfg(feature = "dashboard")]
    backstop_dashboard::mount_builder!();
}

impl<S> tower_layer::Layer<S> for BackstopLayer {
    type Service = BackstopService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        self.config.mount().at_start();
        BackstopService {
            inner,
            config: self.config.clone(),
        }
    }
}
