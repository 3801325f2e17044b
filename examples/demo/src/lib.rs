//! The demo's routes, as a router: `main` serves it, and the end-to-end tests serve
//! it on loopback.
//!
//! | route | what it does |
//! |---|---|
//! | `GET /` | a home page linking to the rest |
//! | `GET /panic` | the handler panics |
//! | `GET /error` | the handler returns an error with a source chain (500) |
//! | `GET /forbidden` | 403 |
//! | `GET /bad-request` | 400 |
//! | any unknown path | 404 |
//! | `GET /users` | users and their posts, with an N+1: one query for the users, then one per user (sqlx on SQLite) |
//! | `GET /users/fixed` | the same data in one join |
//! | `GET /slow` | about 300 ms of work |
//! | `GET /checkout` | prices a basket with exchange rates from `GET /api/rates`, called over HTTP (reqwest) through a small in-memory cache: an outgoing span, a downstream trace, cache hits |
//! | `GET /api/rates` | about 50 ms; the downstream end of `/checkout` |

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use backstop::{BackstopLayer, Breadcrumb, Client, ResponseErrorExt, User};
use backstop_demo_data::{Checkout, Rates, RatesError, SqlitePool, UserPosts};
use maud::{DOCTYPE, html};

/// The demo's router, with the Backstop layer reporting to `client`, reading its users
/// from `data` (see [`backstop_demo_data::open`]). `own` is the address it is served
/// at: `/checkout` calls its `/api/rates` there.
pub fn app(client: &Client, data: SqlitePool, own: SocketAddr) -> Router {
    let rates = Arc::new(Rates::new());
    Router::new()
        .route(
            "/checkout",
            get(move || {
                let rates = rates.clone();
                async move { checkout(&rates, own).await }
            }),
        )
        .route(
            "/api/rates",
            get(|| async { Json(backstop_demo_data::rates().await) }),
        )
        .route("/", get(home))
        .route("/panic", get(panic))
        .route("/error", get(error))
        .route("/forbidden", get(|| async { StatusCode::FORBIDDEN }))
        .route(
            "/bad-request",
            get(|| async { (StatusCode::BAD_REQUEST, "the form was incomplete") }),
        )
        .route("/users", get(users))
        .route("/users/fixed", get(users_fixed))
        .route("/slow", get(slow))
        .with_state(data)
        .layer(
            BackstopLayer::new(client)
                .dashboard(backstop_demo_data::dashboard(client.environment(), own))
                .user_from(|parts| {
                    // A real service reads its session here; the demo trusts a header.
                    let id = parts.headers.get("x-demo-user")?.to_str().ok()?;
                    Some(User::with_id(id))
                }),
        )
}

async fn home() -> Html<String> {
    let links = [
        ("/panic", "a handler that panics"),
        (
            "/error",
            "a handler that returns an error with a source chain",
        ),
        ("/forbidden", "403"),
        ("/bad-request", "400"),
        ("/no/such/page", "an unknown path (404)"),
        ("/users", "users and their posts, with an N+1 query"),
        ("/users/fixed", "the same data in one join"),
        ("/slow", "about 300 ms of work"),
        (
            "/checkout",
            "a call to /api/rates over HTTP through a cache (try it twice)",
        ),
        ("/api/rates", "about 50 ms: what /checkout calls"),
    ];
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Backstop demo" }
            }
            body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem" {
                h1 { "Backstop demo" }
                p { "Each link exercises one thing Backstop catches. Events land in the SQLite store (backstop.db) and are printed on the console." }
                ul {
                    @for (href, what) in links {
                        li { a href=(href) { (href) } " — " (what) }
                    }
                }
            }
        }
    };
    Html(page.into_string())
}

async fn panic() -> &'static str {
    backstop::set_tag("feature", "checkout");
    backstop::add_breadcrumb(Breadcrumb::new("ui", "pressed pay"));
    let basket: Vec<u32> = Vec::new();
    let _ = basket[3];
    "unreachable"
}

/// An error with a cause, the way a storage layer fails.
#[derive(Debug)]
pub struct CheckoutError(std::io::Error);

impl std::fmt::Display for CheckoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the order could not be saved")
    }
}

impl std::error::Error for CheckoutError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl IntoResponse for CheckoutError {
    fn into_response(self) -> Response {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the order could not be saved",
        )
            .into_response()
            .with_error(self)
    }
}

async fn error() -> Result<&'static str, CheckoutError> {
    Err(CheckoutError(std::io::Error::other("disk quota exceeded")))
}

async fn users(State(data): State<SqlitePool>) -> Result<Json<Vec<UserPosts>>, DataError> {
    Ok(Json(backstop_demo_data::users_n_plus_one(&data).await?))
}

async fn users_fixed(State(data): State<SqlitePool>) -> Result<Json<Vec<UserPosts>>, DataError> {
    Ok(Json(backstop_demo_data::users_joined(&data).await?))
}

/// The data store failed: a 500, with the error attached for Backstop.
#[derive(Debug)]
pub struct DataError(backstop_demo_data::Error);

impl From<backstop_demo_data::Error> for DataError {
    fn from(error: backstop_demo_data::Error) -> Self {
        DataError(error)
    }
}

impl std::fmt::Display for DataError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the users could not be read")
    }
}

impl std::error::Error for DataError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl IntoResponse for DataError {
    fn into_response(self) -> Response {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the users could not be read",
        )
            .into_response()
            .with_error(self)
    }
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_millis(300)).await;
    "done, slowly"
}

async fn checkout(rates: &Rates, own: SocketAddr) -> Result<Json<Checkout>, RatesFailed> {
    Ok(Json(rates.checkout(own).await.map_err(RatesFailed)?))
}

/// The rates could not be fetched: a 502, with the error attached for Backstop.
#[derive(Debug)]
pub struct RatesFailed(RatesError);

impl std::fmt::Display for RatesFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for RatesFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl IntoResponse for RatesFailed {
    fn into_response(self) -> Response {
        (
            StatusCode::BAD_GATEWAY,
            "the exchange rates could not be fetched",
        )
            .into_response()
            .with_error(self)
    }
}
