//! The extractor for the request's scope.

use std::future::{Ready, ready};
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use backstop_core::RequestScope;

/// The request's scope, for handlers that prefer an argument to the free functions:
///
/// ```
/// use backstop_actix::BackstopScope;
///
/// async fn checkout(BackstopScope(scope): BackstopScope) -> &'static str {
///     scope.configure(|s| {
///         s.set_user(Some(backstop_core::User::with_id("42")));
///         s.set_tag("cart", "big");
///     });
///     "ok"
/// }
/// ```
///
/// Without the [`Backstop`](crate::Backstop) middleware on the app, extraction fails
/// with a 500 that says so.
#[derive(Debug, Clone)]
pub struct BackstopScope(pub Arc<RequestScope>);

impl FromRequest for BackstopScope {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(_req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        // The middleware binds the scope to the handler's future, extractors included.
        let scope = RequestScope::current();
        ready(scope.map(BackstopScope).ok_or_else(|| {
            actix_web::error::ErrorInternalServerError(
                "BackstopScope needs the Backstop middleware (App::wrap)",
            )
        }))
    }
}
