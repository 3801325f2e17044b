//! The Backstop demo: an axum service on 127.0.0.1:3000 (`BACKSTOP_DEMO_ADDR`) with the
//! Backstop layer, the SQLite store at `backstop.db` (`BACKSTOP_DB`) and the branded
//! pages.

use std::net::SocketAddr;

use backstop::{Options, SqliteStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::var("BACKSTOP_DEMO_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3000".into())
        .parse()?;
    let db = std::env::var("BACKSTOP_DB").unwrap_or_else(|_| "backstop.db".into());
    let backstop = backstop::init(
        Options::from_env()
            .release(concat!("backstop-demo@", env!("CARGO_PKG_VERSION")))
            .traces_sample_rate(1.0)
            .sink(SqliteStore::open(&db)?)
            .console(true),
    )?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("Backstop demo on http://{addr} (events in {db})");
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
    let app = backstop_demo::app(&backstop);
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
