//! Branded error pages for Backstop, rendered with [maud].
//!
//! Visitors who hit an error see a page that looks like the team's own site; API
//! clients get an RFC 9457 `application/problem+json` document; everything else gets
//! plain text. The crate is framework-agnostic: the tower and actix adapters hand it a
//! status, a [`PageContext`] and the `Accept` header, and send the
//! [`http::Response`] it returns.
//!
//! - [`Theme`]: brand, logo, links, a colour per status, fonts, extra CSS.
//! - [`ErrorPages`]: the theme plus overrides (a whole page per status, a layout around
//!   the default content, or just the texts) and the debug switch.
//! - [`markup`]: the default building blocks, public so overrides reuse them.
//! - [`PageFormat`]: content negotiation with q-values.
//!
//! Production pages never show a panic message, an error chain or a backtrace; the
//! debug page, off by default, does.
//!
//! ```
//! use backstop_pages::{ErrorPages, PageContext, Theme};
//! use http::{HeaderValue, Method, StatusCode, header};
//!
//! let pages = ErrorPages::new(
//!     Theme::new("Acme")
//!         .home_url("https://acme.example/")
//!         .support_email("help@acme.example"),
//! );
//!
//! // A browser asking for a page that does not exist.
//! let ctx = PageContext::new(Method::GET, "/no/such/page");
//! let accept = HeaderValue::from_static("text/html,application/xhtml+xml,*/*;q=0.8");
//! let page = pages.render(StatusCode::NOT_FOUND, &ctx, Some(&accept), false);
//! assert_eq!(page.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
//! assert!(page.body().contains("<h1>Page not found</h1>"));
//!
//! // An API client hitting a panic that was recorded as an event.
//! let ctx = PageContext::new(Method::POST, "/api/orders").with_event_id("9f0c4e2b");
//! let accept = HeaderValue::from_static("application/json");
//! let problem = pages.render(StatusCode::INTERNAL_SERVER_ERROR, &ctx, Some(&accept), false);
//! assert_eq!(problem.headers()[header::CONTENT_TYPE], "application/problem+json; charset=utf-8");
//! assert!(problem.body().contains(r#""event_id":"9f0c4e2b""#));
//! ```
//!
//! See `docs/error-pages.md` in the repository for theming and overrides, with
//! screenshots.

mod context;
mod css;
#[cfg(feature = "core")]
mod lifecycle;
pub mod markup;
mod negotiate;
mod pages;
mod problem;
mod status;
mod text;
mod theme;

pub use context::{BacktraceFrame, DebugDetails, PageContext};
pub use negotiate::PageFormat;
pub use pages::{ErrorPage, ErrorPages};
pub use status::{STATUSES, offers_retry, offers_sign_in, status_headers};
pub use text::{Labels, PageText};
pub use theme::{Accent, DEFAULT_FONT_STACK, FooterLink, Logo, Support, Theme};

/// The maud version these pages are built with, re-exported so overrides use the same.
pub use maud;
