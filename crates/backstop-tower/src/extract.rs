//! The axum extractor for the request's scope.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use backstop_core::RequestScope;
use http::StatusCode;
use http::request::Parts;

/// The request's scope, for handlers that prefer an argument to the free functions:
///
/// ```
/// use backstop_tower::BackstopScope;
///
/// async fn checkout(BackstopScope(scope): BackstopScope) -> &'static str {
///     scope.configure(|s| {
///         s.set_user(Some(backstop_core::User::with_id("42")));
///         s.set_tag("cart", "big");
///     });
///     "ok"
/// }
/// ```
#[derive(Debug, Clone)]
pub struct BackstopScope(pub Arc<RequestScope>);

/// The layer is not installed on this route.
#[derive(Debug)]
pub struct MissingLayer;

impl IntoResponse for MissingLayer {
    fn into_response(self) -> Response {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "BackstopScope needs BackstopLayer on this route",
        )
            .into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for BackstopScope {
    type Rejection = MissingLayer;

    async fn from_request_parts(_parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // The layer binds the scope to the thread while the handler (and its
        // extractors) run: no per-request extension to insert.
        RequestScope::current()
            .map(BackstopScope)
            .ok_or(MissingLayer)
    }
}
