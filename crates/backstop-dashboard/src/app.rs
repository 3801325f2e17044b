//! The dashboard as a function from request to response: access, routing, headers.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use backstop_store::StoreReader;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use maud::Markup;

use crate::access::{Attempts, COOKIE, ClientIp, Keys, random_hex};
use crate::config::{Access, DashboardConfig};
use crate::views::{self, Ctx, Page, Params};

/// Sent with every response, pages and refusals alike.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
    form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The stylesheet, served by the dashboard itself.
const CSS: &str = include_str!("../assets/dashboard.css");

/// The dashboard: a handler from `http::Request<Bytes>` to `http::Response<Bytes>`
/// over a store reader. Cheap to clone.
///
/// [`handle`](Self::handle) runs SQLite queries on the calling thread: from async
/// code, call it inside `spawn_blocking` (as [`serve`](crate::serve) does).
#[derive(Clone)]
pub struct Dashboard {
    inner: Arc<Inner>,
}

struct Inner {
    reader: StoreReader,
    config: DashboardConfig,
    access: Access,
    /// `None` when the dashboard is off.
    keys: Option<Keys>,
    attempts: Attempts,
}

impl fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dashboard")
            .field("mount_path", &self.inner.config.mount_path)
            .field("access", &self.inner.access)
            .finish_non_exhaustive()
    }
}

impl Dashboard {
    /// A dashboard over `reader`. With no token outside the `development` environment
    /// it is off ([`Access::Off`]): every path answers 404.
    pub fn new(reader: StoreReader, config: DashboardConfig) -> Dashboard {
        let (access, token) = match &config.token {
            Some(token) => (Access::Token, token.clone()),
            None if config.environment == "development" => (Access::Generated, random_hex(24)),
            None => (Access::Off, String::new()),
        };
        let keys = Keys::new(token);
        let access = if keys.is_none() { Access::Off } else { access };
        Dashboard {
            inner: Arc::new(Inner {
                reader,
                config,
                access,
                keys,
                attempts: Attempts::default(),
            }),
        }
    }

    /// Whether it is open, and with which token.
    pub fn access(&self) -> &Access {
        &self.inner.access
    }

    /// Whether it answers anything but 404.
    pub fn is_enabled(&self) -> bool {
        self.inner.keys.is_some()
    }

    /// Where it is mounted (`/_backstop`).
    pub fn mount_path(&self) -> &str {
        &self.inner.config.mount_path
    }

    /// Whether a request path is the dashboard's. The adapters ask this first, so
    /// the dashboard's own requests are never recorded. Cheap: a prefix test.
    pub fn is_dashboard_path(&self, path: &str) -> bool {
        is_under(path, &self.inner.config.mount_path)
    }

    /// The URL that logs in: the base URL (or the mount path) with `?token=`. Print it
    /// on the console for the developer; it is a secret like the token.
    pub fn login_url(&self) -> Option<String> {
        let keys = self.inner.keys.as_ref()?;
        let base = self
            .inner
            .config
            .base_url
            .clone()
            .unwrap_or_else(|| self.inner.config.mount_path.clone());
        Some(format!("{base}/?token={}", keys.token))
    }

    pub(crate) fn config(&self) -> &DashboardConfig {
        &self.inner.config
    }

    /// Answers one request. Paths outside the mount, and every path without the token
    /// or the session cookie, answer 404.
    pub fn handle(&self, request: Request<Bytes>) -> Response<Bytes> {
        let mut response = self.respond(request);
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        response
    }

    fn respond(&self, request: Request<Bytes>) -> Response<Bytes> {
        let Some(keys) = &self.inner.keys else {
            return not_found();
        };
        let mount = self.inner.config.mount_path.as_str();
        let path = request.uri().path();
        if !is_under(path, mount) {
            return not_found();
        }
        let rest = path[mount.len()..].trim_end_matches('/').to_owned();
        let params = Params::parse(request.uri().query().unwrap_or(""));
        let client = request.extensions().get::<ClientIp>().map(|c| c.0);

        if let Some(token) = params.get("token") {
            if self.inner.attempts.blocked(client) {
                return plain(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many attempts; wait a minute.",
                );
            }
            if !keys.token_ok(token) {
                self.inner.attempts.failed(client);
                return not_found();
            }
            let secure = request.uri().scheme_str() == Some("https")
                || self
                    .inner
                    .config
                    .base_url
                    .as_deref()
                    .is_some_and(|u| u.starts_with("https://"));
            let query = params.without("token");
            let location = if query.is_empty() {
                format!("{mount}{}/", rest)
            } else {
                format!("{mount}{}/?{query}", rest)
            };
            let cookie = format!(
                "{COOKIE}={}; Path={mount}; HttpOnly; SameSite=Strict{}",
                keys.session,
                if secure { "; Secure" } else { "" }
            );
            return Response::builder()
                .status(StatusCode::SEE_OTHER)
                .header(header::LOCATION, location)
                .header(header::SET_COOKIE, cookie)
                .body(Bytes::new())
                .unwrap_or_else(|_| not_found());
        }

        let cookies = request
            .headers()
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join("; ");
        if !keys.cookie_ok(Some(&cookies)) {
            return not_found();
        }

        let ctx = Ctx {
            base: mount,
            csrf: &keys.csrf,
            params,
            now: SystemTime::now(),
            config: &self.inner.config,
        };
        let page = match *request.method() {
            Method::GET | Method::HEAD => {
                if rest == "/assets/dashboard.css" {
                    return Response::builder()
                        .header(header::CONTENT_TYPE, "text/css; charset=utf-8")
                        .body(Bytes::from_static(CSS.as_bytes()))
                        .unwrap_or_else(|_| not_found());
                }
                views::get(&self.inner.reader, &ctx, &rest)
            }
            Method::POST => {
                let form = Params::parse(&String::from_utf8_lossy(request.body()));
                if !keys.csrf_ok(form.get("csrf")) {
                    return plain(
                        StatusCode::FORBIDDEN,
                        "This form has expired or did not come from the dashboard. Reload the page and try again.",
                    );
                }
                views::post(&self.inner.reader, &ctx, &rest, &form)
            }
            _ => return plain(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed"),
        };
        match page {
            Ok(Page::Html(markup)) => html(StatusCode::OK, markup),
            Ok(Page::Redirect(location)) => Response::builder()
                .status(StatusCode::SEE_OTHER)
                .header(header::LOCATION, location)
                .body(Bytes::new())
                .unwrap_or_else(|_| not_found()),
            Ok(Page::NotFound(what)) => html(StatusCode::NOT_FOUND, views::missing(&ctx, &what)),
            Err(error) => {
                tracing::warn!(target: "backstop", "dashboard could not read the store: {error}");
                html(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    views::failure(&ctx, &error.to_string()),
                )
            }
        }
    }
}

fn is_under(path: &str, mount: &str) -> bool {
    path.strip_prefix(mount)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn html(status: StatusCode, markup: Markup) -> Response<Bytes> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .body(Bytes::from(markup.into_string()))
        .unwrap_or_else(|_| not_found())
}

fn plain(status: StatusCode, text: &'static str) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from_static(text.as_bytes()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The same answer as for any unknown path: nothing says a dashboard is here.
fn not_found() -> Response<Bytes> {
    plain(StatusCode::NOT_FOUND, "Not Found")
}
