//! The Backstop actix demo: an actix-web service on 127.0.0.1:3001
//! (`BACKSTOP_DEMO_ADDR`) with the Backstop middleware, the SQLite store at
//! `backstop.db` (`BACKSTOP_DB`) and the branded pages.

use std::net::SocketAddr;

use actix_web::{App, HttpServer};
use backstop::{Options, SqliteStore};

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::var("BACKSTOP_DEMO_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3001".into())
        .parse()?;
    let db = std::env::var("BACKSTOP_DB").unwrap_or_else(|_| "backstop.db".into());
    let backstop = backstop::init(
        Options::from_env()
            .release(concat!("backstop-actix-demo@", env!("CARGO_PKG_VERSION")))
            .traces_sample_rate(1.0)
            .sink(SqliteStore::open(&db)?)
            .console(true),
    )?;
    let middleware = backstop_actix_demo::middleware(&backstop);
    let server = HttpServer::new(move || {
        App::new()
            .wrap(middleware.clone())
            .configure(backstop_actix_demo::routes)
    })
    .bind(addr)?;
    println!("Backstop actix demo on http://{addr} (events in {db})");
    for path in [
        "/",
        "/panic",
        "/error",
        "/forbidden",
        "/bad-request",
        "/no/such/page",
        "/users",
        "/users/fixed",
        "/slow",
    ] {
        println!("  http://{addr}{path}");
    }
    println!("  (the dashboard, /_backstop/, arrives with the dashboard crate)");
    // Ctrl-C stops the server gracefully; dropping the guard then flushes the store.
    server.run().await?;
    drop(backstop);
    Ok(())
}
