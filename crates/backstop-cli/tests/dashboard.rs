//! `backstop dashboard`: the dashboard over a store file, served on loopback.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Stdio};

use common::{PATIENCE, command, failure, read_lines, seeded};

/// The server, killed when dropped so a failing test leaves no process behind.
struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request over a fresh connection: the status, the headers, the body.
fn get(addr: SocketAddr, path: &str, cookie: Option<&str>) -> (u16, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{cookie}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    let code = status.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap();
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    let mut body = Vec::new();
    let _ = reader.read_to_end(&mut body);
    (code, headers, String::from_utf8_lossy(&body).into_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Starts `backstop dashboard` on a free loopback port; the server and the login URL
/// it printed.
fn start(db: &std::path::Path, token: Option<&str>) -> (Serving, String) {
    let mut cmd = command(db.parent().unwrap());
    cmd.args(["dashboard", "--addr", "127.0.0.1:0", "--db"])
        .arg(db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    match token {
        Some(token) => cmd.env("BACKSTOP_DASHBOARD_TOKEN", token),
        None => cmd.env_remove("BACKSTOP_DASHBOARD_TOKEN"),
    };
    let mut child = cmd.spawn().unwrap();
    let lines = read_lines(child.stdout.take().unwrap());
    let serving = Serving(child);
    let line = lines.recv_timeout(PATIENCE).expect("the login URL printed");
    let url = line
        .strip_prefix("Backstop dashboard: ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_owned();
    (serving, url)
}

/// `http://127.0.0.1:PORT/_backstop/?token=T` → the address and the token.
fn split(url: &str) -> (SocketAddr, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (addr, path) = rest.split_once('/').unwrap();
    assert_eq!(path.split_once('?').unwrap().0, "_backstop/");
    let token = path.split_once("?token=").unwrap().1.to_owned();
    (addr.parse().unwrap(), token)
}

#[test]
fn the_dashboard_opens_with_the_token_only() {
    let seeded = seeded();
    let (_server, url) = start(&seeded.fixture.path, Some("cli-dashboard-token-1234"));
    let (addr, token) = split(&url);
    assert_eq!(token, "cli-dashboard-token-1234");
    assert!(addr.ip().is_loopback());

    // Without the token: 404, and the page says nothing of what is stored.
    let (status, _, body) = get(addr, "/_backstop/issues", None);
    assert_eq!(status, 404);
    assert!(!body.contains("disk almost full"), "{body}");
    let (status, _, _) = get(addr, "/_backstop/?token=wrong-token", None);
    assert_eq!(status, 404);

    // The token sets the cookie and redirects without it.
    let (status, headers, _) = get(addr, &format!("/_backstop/?token={token}"), None);
    assert_eq!(status, 303);
    assert_eq!(header(&headers, "location"), Some("/_backstop/"));
    let cookie = header(&headers, "set-cookie").expect("a session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    let cookie = cookie.split(';').next().unwrap().to_owned();

    // With the cookie, the pages show the store.
    let (status, _, body) = get(addr, "/_backstop/issues", Some(&cookie));
    assert_eq!(status, 200);
    assert!(body.contains("disk almost full"), "{body}");
}

#[test]
fn with_no_token_set_a_random_one_is_printed() {
    let seeded = seeded();
    let (_a, first) = start(&seeded.fixture.path, None);
    let (_b, second) = start(&seeded.fixture.path, None);
    let (addr, token) = split(&first);
    assert!(token.len() >= 32, "{token}");
    assert_ne!(token, split(&second).1, "each start makes its own");
    let (status, headers, _) = get(addr, &format!("/_backstop/?token={token}"), None);
    assert_eq!(status, 303);
    assert!(header(&headers, "set-cookie").is_some());
}

#[test]
fn a_missing_store_or_a_taken_port_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path())
        .args(["dashboard", "--db", "nowhere.db"])
        .output()
        .unwrap();
    let err = failure(&out, 3);
    assert!(err.contains("no Backstop store at nowhere.db"), "{err}");

    let seeded = seeded();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut child = command(seeded.fixture.dir.path())
        .args(["dashboard", "--addr", &addr, "--db"])
        .arg(&seeded.fixture.path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = common::wait_for_exit(&mut child);
    assert_eq!(status.code(), Some(1));
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
}
