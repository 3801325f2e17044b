//! Backstop's local dashboard: every issue, request and query the store recorded,
//! closed to strangers.
//!
//! [`Dashboard`] is framework-neutral, like the error pages: it turns an
//! `http::Request<Bytes>` into an `http::Response<Bytes>` over a
//! [`StoreReader`](backstop_store::StoreReader). The adapters mount it under
//! `/_backstop`; [`serve`] runs it on its own (the `backstop dashboard` command).
//! Pages are rendered on the server with maud, charts are inline SVG, and nothing runs
//! in the browser: no script, nothing from a CDN.
//!
//! It is closed by default:
//! - it opens with a token ([`DashboardConfig::token`] or `BACKSTOP_DASHBOARD_TOKEN`);
//!   in development with none, a random one is made and [`Dashboard::login_url`] gives
//!   the URL to print; elsewhere with none, the dashboard is off;
//! - `?token=T` sets an `HttpOnly`, `SameSite=Strict` cookie and redirects to the same
//!   URL without the token;
//! - without the token or the cookie, every path answers 404;
//! - every change is a POST carrying a CSRF token;
//! - every response has a strict Content-Security-Policy, `Referrer-Policy:
//!   no-referrer` and `Cache-Control: no-store`.
//!
//! ```
//! use backstop_dashboard::{Dashboard, DashboardConfig};
//! use backstop_store::SqliteStore;
//! use bytes::Bytes;
//!
//! let store = SqliteStore::open(":memory:").unwrap();
//! let dashboard = Dashboard::new(store.reader(), DashboardConfig::new().token("s3cret-token"));
//!
//! // A stranger sees nothing.
//! let request = http::Request::get("/_backstop/").body(Bytes::new()).unwrap();
//! assert_eq!(dashboard.handle(request).status(), 404);
//!
//! // The token sets the cookie and redirects.
//! let request = http::Request::get("/_backstop/?token=s3cret-token").body(Bytes::new()).unwrap();
//! let response = dashboard.handle(request);
//! assert_eq!(response.status(), 303);
//! assert!(response.headers()["set-cookie"].to_str().unwrap().contains("HttpOnly"));
//! ```
//!
//! See `docs/dashboard.md` for the pages and screenshots.

mod access;
mod app;
mod charts;
mod config;
mod format;
mod mount;
mod server;
mod views;

pub use access::ClientIp;
pub use app::Dashboard;
pub use config::{Access, DEFAULT_MOUNT_PATH, DashboardConfig, StatsSource, TOKEN_ENV, URL_ENV};
pub use mount::{Mount, answer, answer_blocking};
pub use server::{serve, serve_listener};
