//! One actix-web middleware for Backstop.
//!
//! Register [`Backstop`] with `App::wrap` and every request is covered:
//!
//! - a panic, in the service's `call` or inside its future, is caught: the visitor gets
//!   the 500 page (or `application/problem+json`), the event is recorded with the
//!   request, user, tags and breadcrumbs, and the worker keeps serving;
//! - 5xx responses are recorded, with or without an error object; a known error type
//!   ([`Backstop::error_type`]) is recorded with its `source()` chain;
//! - error responses with an empty or plain-text body (actix's default 404 and 405,
//!   extractor errors, payload too large) become branded pages, keeping the status's
//!   headers and the extractor's text as the detail;
//! - sampled requests become transactions named `METHOD {match_pattern}`, continuing
//!   an incoming `traceparent` or `sentry-trace`.
//!
//! Handler code reaches the request's scope with `backstop::set_user`,
//! `backstop::add_breadcrumb` and friends, or with the [`BackstopScope`] extractor.
//!
//! ```no_run
//! use actix_web::{App, HttpServer, web};
//! use backstop_actix::{Backstop, BackstopScope};
//!
//! async fn checkout(BackstopScope(scope): BackstopScope) -> &'static str {
//!     scope.configure(|s| s.set_tag("cart", "big"));
//!     backstop_core::set_user(Some(backstop_core::User::with_id("42")));
//!     "ok"
//! }
//!
//! #[actix_web::main]
//! async fn main() -> std::io::Result<()> {
//!     let backstop = backstop_core::init(backstop_core::Options::from_env())
//!         .expect("valid Backstop options");
//!     let middleware = Backstop::new(&backstop);
//!     HttpServer::new(move || {
//!         App::new()
//!             .wrap(middleware.clone())
//!             .route("/checkout", web::post().to(checkout))
//!     })
//!     .bind(("127.0.0.1", 8080))?
//!     .run()
//!     .await
//! }
//! ```
//!
//! The guide is `docs/actix.md` in the repository.

mod body;
mod errors;
mod extract;
mod middleware;
mod service;

pub use backstop_core::{HttpOptions, PagePolicy, PageRule};
pub use backstop_pages::ErrorPages;
pub use extract::BackstopScope;
pub use middleware::{Backstop, UserFrom};
pub use service::{BackstopBody, BackstopMiddleware, ResponseFuture};
#[doc(hidden)]
pub use service::{DashboardFuture, Glue, Held};
