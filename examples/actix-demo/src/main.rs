//! The Backstop actix demo: an actix-web service on 127.0.0.1:3001
//! (`BACKSTOP_DEMO_ADDR`) with the Backstop middleware, the SQLite store at
//! `backstop.db` (`BACKSTOP_DB`) and the branded pages. Its own data (users and posts)
//! is in `backstop-demo-data.db` (`BACKSTOP_DEMO_DATA`), seeded at start.

use std::net::SocketAddr;

use actix_web::{App, HttpServer, web};
use backstop::{Options, SqliteStore};
use tracing_subscriber::prelude::*;

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::var("BACKSTOP_DEMO_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3001".into())
        .parse()?;
    let db = std::env::var("BACKSTOP_DB").unwrap_or_else(|_| "backstop.db".into());
    let data_path =
        std::env::var("BACKSTOP_DEMO_DATA").unwrap_or_else(|_| "backstop-demo-data.db".into());
    // Spans, query spans and breadcrumbs come through the tracing layer.
    tracing_subscriber::registry()
        .with(
            backstop::tracing::Config::new()
                .sqlx_system("sqlite")
                .layer(),
        )
        .init();
    let backstop = backstop::init(
        Options::from_env()
            .release(concat!("backstop-actix-demo@", env!("CARGO_PKG_VERSION")))
            .traces_sample_rate(1.0)
            .problem_thresholds(backstop_demo_data::thresholds())
            .sink(SqliteStore::open(&db)?)
            .console(true),
    )?;
    let data = web::Data::new(backstop_demo_data::open(&data_path).await?);
    let middleware = backstop_actix_demo::middleware(&backstop)
        .dashboard(backstop_demo_data::dashboard(backstop.environment(), addr));
    let server = HttpServer::new(move || {
        App::new()
            .wrap(middleware.clone())
            .app_data(data.clone())
            .configure(backstop_actix_demo::routes)
    })
    .bind(addr)?;
    println!("Backstop actix demo on http://{addr} (events in {db}, data in {data_path})");
    for path in backstop_demo_data::ROUTES {
        println!("  http://{addr}{path}");
    }
    println!("  http://{addr}/_backstop/  (the dashboard: open the login URL below)");
    // Ctrl-C stops the server gracefully; dropping the guard then flushes the store.
    server.run().await?;
    drop(backstop);
    Ok(())
}
