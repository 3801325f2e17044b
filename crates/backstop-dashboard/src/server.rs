//! The dashboard on its own HTTP server, for `backstop dashboard`: no app running,
//! just a store file.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use http::{StatusCode, header};

use crate::access::ClientIp;
use crate::app::Dashboard;

/// The largest form body read (bulk actions on a page of issues are far smaller).
const MAX_BODY: usize = 64 * 1024;

/// Serves the dashboard on `addr` until the task is dropped. Binds and then runs; a
/// bind failure is the error.
///
/// Only requests whose `Host` is in the allow-list (loopback names, plus
/// [`DashboardConfig::allowed_host`](crate::DashboardConfig::allowed_host)) are
/// answered, so a page on another site cannot reach the dashboard through DNS
/// rebinding.
pub async fn serve(dashboard: Dashboard, addr: SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_listener(dashboard, listener).await
}

/// Serves the dashboard on a listener already bound (to learn the port first).
pub async fn serve_listener(
    dashboard: Dashboard,
    listener: tokio::net::TcpListener,
) -> std::io::Result<()> {
    let app = Router::new().fallback(answer).with_state(dashboard);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}

async fn answer(
    State(dashboard): State<Dashboard>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .unwrap_or("");
    if !host_allowed(host, &dashboard.config().allowed_hosts) {
        return refuse(StatusCode::MISDIRECTED_REQUEST, "Unknown host");
    }
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large");
    };
    let mut request = http::Request::from_parts(parts, body);
    request.extensions_mut().insert(ClientIp(peer.ip()));
    match tokio::task::spawn_blocking(move || dashboard.handle(request)).await {
        Ok(response) => response.map(Body::from),
        Err(_) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "Internal error"),
    }
}

/// Whether `host` (`name` or `name:port`) names an allowed host.
fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let host = host.to_ascii_lowercase();
    let name = match host.rsplit_once(':') {
        // `[::1]:7070` or `name:7070`, but not the bare `[::1]`.
        Some((name, port)) if !port.contains(']') && port.chars().all(|c| c.is_ascii_digit()) => {
            name.to_owned()
        }
        _ => host.clone(),
    };
    allowed.iter().any(|a| *a == host || *a == name)
}

fn refuse(status: StatusCode, text: &'static str) -> Response {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::host_allowed;

    #[test]
    fn hosts_match_with_or_without_a_port() {
        let allowed = vec![
            "localhost".to_owned(),
            "[::1]".to_owned(),
            "127.0.0.1".to_owned(),
        ];
        assert!(host_allowed("localhost:7070", &allowed));
        assert!(host_allowed("LOCALHOST", &allowed));
        assert!(host_allowed("[::1]:7070", &allowed));
        assert!(host_allowed("[::1]", &allowed));
        assert!(host_allowed("127.0.0.1:7070", &allowed));
        assert!(!host_allowed("evil.example:7070", &allowed));
        assert!(!host_allowed("localhost.evil.example", &allowed));
        assert!(!host_allowed("", &allowed));
    }
}
