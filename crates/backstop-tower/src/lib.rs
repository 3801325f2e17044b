//! One tower layer for axum and any tower service.
//!
//! Add [`BackstopLayer`] and every request is covered:
//!
//! - a panic, in the service's `call` or inside its future, is caught: the visitor gets
//!   the 500 page (or `application/problem+json`), the event is recorded with the
//!   request, user, tags and breadcrumbs, and the server keeps serving;
//! - 5xx responses are recorded, with the real error type and its `source()` chain
//!   when the handler attached it ([`ResponseErrorExt::with_error`]);
//! - error responses with an empty or plain-text body (axum's 404/405, extractor
//!   rejections) become branded pages, keeping the status's headers;
//! - sampled requests become transactions named `METHOD /route/{param}`.
//!
//! There is no second layer to order, and no separate panic catcher.
//!
//! For the service's own calls to others, [`OutgoingLayer`] (core's, re-exported) wraps
//! a tower HTTP client (hyper's): each call is a span of the request, and carries its
//! trace.
//!
//! ```
//! use axum::{Router, routing::get};
//! use backstop_tower::BackstopLayer;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let backstop = backstop_core::init(backstop_core::Options::from_env())?;
//! let app: Router = Router::new()
//!     .route("/users/{id}", get(|| async { "a user" }))
//!     .layer(BackstopLayer::new(&backstop));
//! # drop(app); Ok(()) }
//! ```

use std::sync::Arc;

mod capture;
mod layer;
mod service;

#[cfg(feature = "axum")]
mod extract;

pub use backstop_core::tower::BoxError;
pub use backstop_core::tower::{Outgoing, OutgoingFuture, OutgoingLayer};
pub use backstop_core::{HttpOptions, PagePolicy, PageRule};
pub use backstop_pages::ErrorPages;
#[cfg(feature = "axum")]
pub use extract::BackstopScope;
pub use layer::{BackstopLayer, UserFrom};
pub use service::{BackstopBody, BackstopService, ResponseFuture};
#[doc(hidden)]
pub use service::{DashboardFuture, Glue, Held, Route};

/// An error a handler attached to its response, so the recorded event carries the
/// real type and its `source()` chain. See [`ResponseErrorExt::with_error`].
#[derive(Clone, Debug)]
pub struct CapturedError(pub Arc<dyn std::error::Error + Send + Sync + 'static>);

/// Attaches the error behind an error response.
///
/// ```
/// use axum::response::{IntoResponse, Response};
/// use backstop_tower::ResponseErrorExt;
/// use http::StatusCode;
///
/// #[derive(Debug)]
/// struct AppError(std::io::Error);
///
/// impl std::fmt::Display for AppError {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("the order could not be saved")
///     }
/// }
///
/// impl std::error::Error for AppError {
///     fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
///         Some(&self.0)
///     }
/// }
///
/// impl IntoResponse for AppError {
///     fn into_response(self) -> Response {
///         StatusCode::INTERNAL_SERVER_ERROR.into_response().with_error(self)
///     }
/// }
/// ```
pub trait ResponseErrorExt {
    /// Attaches `error` to the response.
    #[must_use]
    fn with_error<E: std::error::Error + Send + Sync + 'static>(self, error: E) -> Self;
}

impl<B> ResponseErrorExt for http::Response<B> {
    fn with_error<E: std::error::Error + Send + Sync + 'static>(mut self, error: E) -> Self {
        self.extensions_mut().insert(CapturedError(Arc::new(error)));
        self
    }
}
