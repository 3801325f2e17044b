//! The Backstop demo: an axum service on 127.0.0.1:3000 (`BACKSTOP_DEMO_ADDR`) with the
//! Backstop layer, the SQLite store at `backstop.db` (`BACKSTOP_DB`) and the branded
//! pages. Its own data (users and posts) is in `backstop-demo-data.db`
//! (`BACKSTOP_DEMO_DATA`), seeded at start.

use std::net::SocketAddr;

use backstop::{Options, SqliteStore};
use tracing_subscriber::prelude::*;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::var("BACKSTOP_DEMO_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3000".into())
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
            .release(concat!("backstop-demo@", env!("CARGO_PKG_VERSION")))
            .traces_sample_rate(1.0)
            .problem_thresholds(backstop_demo_data::thresholds())
            // Alerts from BACKSTOP_ALERT_* (none set: no alerts).
            .sink(backstop::alerts::Alerts::from_env()?.watch(SqliteStore::open(&db)?))
            .console(true),
    )?;
    let data = backstop_demo_data::open(&data_path).await?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("Backstop demo on http://{addr} (events in {db}, data in {data_path})");
    for path in backstop_demo_data::ROUTES {
        println!("  http://{addr}{path}");
    }
    // Building the app mounts the dashboard and, with no BACKSTOP_DASHBOARD_TOKEN in
    // development, prints its login URL.
    println!("  http://{addr}/_backstop/  (the dashboard: open the login URL below)");
    let app = backstop_demo::app(&backstop, data, addr);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    drop(backstop);
    Ok(())
}
