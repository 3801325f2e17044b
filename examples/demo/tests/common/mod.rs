//! Serving the demo's router on loopback for the tests, as its `main` does.

use std::net::SocketAddr;

/// Serves the demo's router reporting to `backstop`, with the tracing layer and a fresh
/// data file in `dir`; returns its address.
pub(crate) async fn serve_demo(backstop: &backstop::Client, dir: &tempfile::TempDir) -> SocketAddr {
    backstop_parity::install_tracing();
    let data = backstop_demo_data::open(dir.path().join("data.db"))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = backstop_demo::app(backstop, data, addr);
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}
