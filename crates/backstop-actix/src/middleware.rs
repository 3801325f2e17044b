//! [`Backstop`]: the one middleware, and its builder.

use std::fmt;
use std::future::{Ready, ready};
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::HeaderName;
use actix_web::{HttpRequest, ResponseError};
use backstop_core::Client;
use backstop_core::adapter::{AdapterConfig, AppMount};
use backstop_pages::ErrorPages;

use crate::errors::ErrorTypes;
use crate::service::BackstopMiddleware;

/// Resolves the user of a request (from a session, an auth extension, a header...).
pub type UserFrom = backstop_core::adapter::UserFrom<HttpRequest>;

/// The one middleware: catches panics, records 5xx responses and sampled transactions,
/// and turns error responses into branded pages.
///
/// ```
/// use actix_web::{App, web};
/// use backstop_actix::Backstop;
///
/// let backstop = backstop_core::init(backstop_core::Options::new()).unwrap();
/// let app = App::new()
///     .wrap(Backstop::new(&backstop))
///     .route("/", web::get().to(|| async { "hello" }));
/// # drop(app);
/// ```
#[derive(Clone)]
pub struct Backstop {
    pub(crate) shared: Arc<Shared>,
}

/// How the middleware is configured (the builder methods of [`Backstop`] set it).
pub(crate) type Config = AdapterConfig<HttpRequest, ErrorPages, Mount>;

#[cfg(feature = "dashboard")]
type Mount = backstop_dashboard::Mount;
/// Without the feature, no dashboard is mounted.
#[cfg(not(feature = "dashboard"))]
type Mount = ();

#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) errors: ErrorTypes,
    /// The request id header's name as actix's (`http` 0.2) header name.
    pub(crate) request_id_header: HeaderName,
}

impl fmt::Debug for Backstop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Backstop")
            .field(&self.shared.config)
            .finish()
    }
}

impl Backstop {
    /// A middleware reporting to `client` (the [`Backstop`](backstop_core::BackstopGuard)
    /// guard derefs to it), with the default HTTP options and pages. The debug page is
    /// on when the client's environment is `development`, for visitors on this
    /// machine.
    pub fn new(client: &Client) -> Self {
        let config = Config::new(client, ErrorPages::default());
        Backstop {
            shared: Arc::new(Shared {
                request_id_header: actix_header_name(
                    config.http_options().request_id_header_name(),
                ),
                config,
                errors: crate::errors::known(),
            }),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut Shared)) -> Self {
        let shared = Arc::make_mut(&mut self.shared);
        f(shared);
        shared.request_id_header =
            actix_header_name(shared.config.http_options().request_id_header_name());
        self
    }

    fn configure(self, f: impl FnOnce(Config) -> Config) -> Self {
        self.with(|s| s.config = f(s.config.clone()))
    }

    backstop_core::adapter_builder! {
        pages: ErrorPages,
        /// Resolves the user per request. A panic in `f` is contained: the request goes on
        /// without a user.
        ///
        /// ```
        /// # use backstop_actix::Backstop;
        /// use actix_web::HttpMessage;
        /// # let backstop = backstop_core::init(backstop_core::Options::new()).unwrap();
        /// #[derive(Clone)]
        /// struct Auth { user_id: u64 }
        ///
        /// let middleware = Backstop::new(&backstop).user_from(|req| {
        ///     let auth = req.extensions().get::<Auth>()?.clone();
        ///     Some(backstop_core::User::with_id(auth.user_id.to_string()))
        /// });
        /// # drop(middleware);
        /// ```
        user_from: HttpRequest,
    }

    #[cfg(feature = "dashboard")]
    backstop_dashboard::mount_builder!();

    /// Records errors of type `E` in 5xx responses with their real type and `source()`
    /// chain.
    ///
    /// actix keeps a handler's error as a `dyn ResponseError`, which cannot be asked for
    /// its `source()`; naming the type lets the middleware look it up. Without it, the
    /// event carries the error's message and the type name its `Debug` output starts
    /// with. `std::io::Error`, `Box<dyn Error>` and actix's own extractor errors are
    /// known already.
    ///
    /// ```
    /// # use backstop_actix::Backstop;
    /// # let backstop = backstop_core::init(backstop_core::Options::new()).unwrap();
    /// #[derive(Debug)]
    /// struct CheckoutError(std::io::Error);
    /// # impl std::fmt::Display for CheckoutError {
    /// #     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("checkout failed") }
    /// # }
    /// impl std::error::Error for CheckoutError {
    ///     fn source(&self) -> Option<&(dyn std::error::Error + 'static)> { Some(&self.0) }
    /// }
    /// impl actix_web::ResponseError for CheckoutError {}
    ///
    /// let middleware = Backstop::new(&backstop).error_type::<CheckoutError>();
    /// # drop(middleware);
    /// ```
    #[must_use]
    pub fn error_type<E: ResponseError + std::error::Error + 'static>(self) -> Self {
        self.with(|s| s.errors.add(crate::errors::of::<E>()))
    }
}

fn actix_header_name(name: &http::HeaderName) -> HeaderName {
    // The default is static, so the clone each response takes shares no count between
    // workers. Both are lowercase, validated header names: the conversion cannot fail.
    const DEFAULT: &str = "x-request-id";
    if name.as_str() == DEFAULT {
        return HeaderName::from_static(DEFAULT);
    }
    HeaderName::from_bytes(name.as_str().as_bytes()).unwrap_or(HeaderName::from_static(DEFAULT))
}

impl<S, B> Transform<S, ServiceRequest> for Backstop
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<actix_web::body::EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = BackstopMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        self.shared.config.mount().at_start();
        ready(Ok(BackstopMiddleware {
            service,
            shared: self.shared.clone(),
            routes: Default::default(),
        }))
    }
}
