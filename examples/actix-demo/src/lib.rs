//! The actix demo's routes: `main` serves them, and the end-to-end test serves them on
//! loopback. The same routes as the axum demo (the demo contract):
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
//!
//! The routes read their users from a [`SqlitePool`] in the app's data (see
//! [`backstop_demo_data::open`]).
//!
//! The middleware mounts the dashboard at `/_backstop/` (the store is among the sinks);
//! in development with no `BACKSTOP_DASHBOARD_TOKEN`, its login URL is printed at start.

use std::sync::LazyLock;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use backstop::actix::Backstop;
use backstop::{Breadcrumb, Client, User};
pub use backstop_demo_data::SqlitePool;
use backstop_demo_data::{Checkout, Rates, RatesError, UserPosts};
use maud::{DOCTYPE, html};

/// The Backstop middleware as the demo configures it.
pub fn middleware(client: &Client) -> Backstop {
    Backstop::new(client)
        .error_type::<CheckoutError>()
        .error_type::<DataError>()
        .error_type::<RatesFailed>()
        .user_from(|req| {
            // A real service reads its session here; the demo trusts a header.
            let id = req.headers().get("x-demo-user")?.to_str().ok()?;
            Some(User::with_id(id))
        })
}

/// The demo's routes (wrap the app in [`middleware`], and give it the users' pool as
/// `web::Data<SqlitePool>`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home))
        .route("/panic", web::get().to(panic))
        .route("/error", web::get().to(error))
        .route(
            "/forbidden",
            web::get().to(|| async { HttpResponse::Forbidden().finish() }),
        )
        .route(
            "/bad-request",
            web::get().to(|| async {
                HttpResponse::BadRequest()
                    .content_type("text/plain; charset=utf-8")
                    .body("the form was incomplete")
            }),
        )
        .route("/users", web::get().to(users))
        .route("/users/fixed", web::get().to(users_fixed))
        .route("/slow", web::get().to(slow))
        .route("/checkout", web::get().to(checkout))
        .route(
            "/api/rates",
            web::get().to(|| async { web::Json(backstop_demo_data::rates().await) }),
        );
}

async fn home() -> HttpResponse {
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
                title { "Backstop actix demo" }
            }
            body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem" {
                h1 { "Backstop actix demo" }
                p { "Each link exercises one thing Backstop catches. Events land in the SQLite store (backstop.db) and are printed on the console." }
                ul {
                    @for (href, what) in links {
                        li { a href=(href) { (href) } " — " (what) }
                    }
                }
            }
        }
    };
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(page.into_string())
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

/// A 500 with the error's text; [`middleware`] names the type, so the event carries
/// it and its source chain.
impl ResponseError for CheckoutError {}

async fn error() -> Result<&'static str, CheckoutError> {
    Err(CheckoutError(std::io::Error::other("disk quota exceeded")))
}

async fn users(data: web::Data<SqlitePool>) -> Result<web::Json<Vec<UserPosts>>, DataError> {
    Ok(web::Json(
        backstop_demo_data::users_n_plus_one(&data).await?,
    ))
}

async fn users_fixed(data: web::Data<SqlitePool>) -> Result<web::Json<Vec<UserPosts>>, DataError> {
    Ok(web::Json(backstop_demo_data::users_joined(&data).await?))
}

/// The data store failed: a 500; [`middleware`] names the type, so the event carries
/// it and its source chain.
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

impl ResponseError for DataError {}

async fn slow() -> &'static str {
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    "done, slowly"
}

/// The rates cache, shared by every worker of the app.
static RATES: LazyLock<Rates> = LazyLock::new(Rates::new);

async fn checkout(req: HttpRequest) -> Result<web::Json<Checkout>, RatesFailed> {
    // The rates are the app's own: called at the address this connection came in on.
    let own = req.app_config().local_addr();
    Ok(web::Json(RATES.checkout(own).await.map_err(RatesFailed)?))
}

/// The rates could not be fetched: a 502; [`middleware`] names the type, so the event
/// carries it and its source chain.
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

impl ResponseError for RatesFailed {
    fn status_code(&self) -> actix_web::http::StatusCode {
        actix_web::http::StatusCode::BAD_GATEWAY
    }
}
