//! A real dashboard server on 127.0.0.1 over a seeded store, and a small HTTP/1.1
//! client for the tests.
#![allow(dead_code, unreachable_pub)]

pub mod seed;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use backstop_dashboard::{Dashboard, DashboardConfig};
use backstop_store::SqliteStore;

pub const TOKEN: &str = "test-token-0123456789abcdef";

/// A running server and the store file behind it.
pub struct Server {
    pub addr: SocketAddr,
    pub dashboard: Dashboard,
    pub dir: tempfile::TempDir,
}

/// Starts the standalone server over a store seeded with `size`, `text` in every field.
pub fn start(size: seed::Size, text: &str, config: DashboardConfig) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("backstop.db");
    let mut store = SqliteStore::open(&path).unwrap();
    seed::seed(&mut store, size, text);
    let dashboard = Dashboard::new(store.reader(), config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let serving = dashboard.clone();
    std::thread::spawn(move || {
        let _store = store;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            backstop_dashboard::serve_listener(serving, listener)
                .await
                .unwrap();
        });
    });
    Server {
        addr,
        dashboard,
        dir,
    }
}

/// One response, read to the end.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request (`Connection: close`) and reads the whole reply.
pub fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: 127.0.0.1:{}\r\n", addr.port()));
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        request.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Pipeline counters as a busy app would report them, with some events lost to a full
/// queue: what the health page shows and warns about.
pub fn busy_pipeline() -> backstop_core::Stats {
    let mut stats = backstop_core::Stats::default();
    stats.events.captured = 1_250;
    stats.events.sent = 1_180;
    stats.events.dropped_queue_full = 42;
    stats.events.dropped_ignored = 28;
    stats.transactions.captured = 48_000;
    stats.transactions.sent = 48_000;
    stats.queued = 3;
    stats
}

/// Logs in with the token and returns the session cookie (`name=value`).
pub fn login(addr: SocketAddr) -> String {
    let reply = send(addr, "GET", &format!("/_backstop/?token={TOKEN}"), &[], "");
    assert_eq!(reply.status, 303, "{reply:?}");
    let cookie = reply.header("set-cookie").expect("a cookie");
    cookie.split(';').next().unwrap().to_owned()
}

/// A GET with the session cookie.
pub fn get(addr: SocketAddr, cookie: &str, path: &str) -> Reply {
    send(addr, "GET", path, &[("Cookie", cookie)], "")
}

/// The CSRF token in a page's forms.
pub fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token");
    let rest = &page[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// Every page of the dashboard, for a store seeded by [`seed::seed`]: the paths are
/// found by following links from the lists, so they exist.
pub fn every_page(addr: SocketAddr, cookie: &str) -> Vec<(String, String)> {
    let mut pages = vec![
        ("overview".to_owned(), "/_backstop/".to_owned()),
        (
            "issues".to_owned(),
            "/_backstop/issues?status=all".to_owned(),
        ),
        (
            "performance".to_owned(),
            "/_backstop/performance?range=7d".to_owned(),
        ),
        (
            "queries".to_owned(),
            "/_backstop/queries?range=7d".to_owned(),
        ),
        ("releases".to_owned(), "/_backstop/releases".to_owned()),
        ("alerts".to_owned(), "/_backstop/alerts".to_owned()),
        ("health".to_owned(), "/_backstop/health".to_owned()),
    ];
    let issues = get(addr, cookie, "/_backstop/issues?status=all&kind=error").body;
    pages.push(("issue".into(), first_link(&issues, "/_backstop/issues/")));
    let perf = get(
        addr,
        cookie,
        "/_backstop/issues?status=all&kind=performance",
    )
    .body;
    pages.push((
        "performance-issue".into(),
        first_link(&perf, "/_backstop/issues/"),
    ));
    let routes = get(addr, cookie, "/_backstop/performance?range=7d").body;
    let route = first_link(&routes, "/_backstop/performance/route?");
    let route = format!("{route}&range=7d");
    let route_page = get(addr, cookie, &route).body;
    pages.push(("route".into(), route));
    pages.push((
        "request".into(),
        first_link(&route_page, "/_backstop/requests/"),
    ));
    let queries = get(addr, cookie, "/_backstop/queries?range=7d").body;
    pages.push((
        "statement".into(),
        first_link(&queries, "/_backstop/queries/statement?"),
    ));
    let releases = get(addr, cookie, "/_backstop/releases").body;
    pages.push((
        "compare".into(),
        first_link(&releases, "/_backstop/releases/compare?"),
    ));
    pages
}

/// The first `href` starting with `prefix`, HTML entities undone.
pub fn first_link(page: &str, prefix: &str) -> String {
    let needle = format!("href=\"{prefix}");
    let at = page
        .find(&needle)
        .unwrap_or_else(|| panic!("no link to {prefix} in the page"));
    let rest = &page[at + "href=\"".len()..];
    rest[..rest.find('"').unwrap()].replace("&amp;", "&")
}
