//! A small Sentry-protocol receiver on loopback that can misbehave on request: answer
//! with any status and headers, answer late, or cut the connection mid-body. Every
//! envelope it reads is parsed with `sentry-types`, the envelope and each item.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// What the receiver does with one request.
#[derive(Debug, Clone)]
pub enum Action {
    /// Answers with this status and these headers.
    Answer(u16, Vec<(&'static str, String)>),
    /// Answers 200 after this long.
    Late(Duration),
    /// Reads part of the body, then closes the connection.
    Cut,
}

/// A request the receiver read in full.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub envelope_header: Value,
    /// `(item header, payload)` per item.
    pub items: Vec<(Value, Value)>,
    /// The answer it was given.
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn item(&self, ty: &str) -> Option<&Value> {
        self.items
            .iter()
            .find(|(h, _)| h["type"] == ty)
            .map(|(_, p)| p)
    }

    /// The event or transaction's id, if it carries one.
    pub fn event_id(&self) -> Option<String> {
        self.items
            .iter()
            .find(|(h, _)| h["type"] == "event" || h["type"] == "transaction")
            .and_then(|(_, p)| p["event_id"].as_str().map(str::to_owned))
    }
}

type Script = Box<dyn FnMut(usize) -> Action + Send>;

/// The receiver. `script` decides the action for the n-th request (from 0).
pub struct Receiver {
    addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
    pub requests: Arc<Mutex<usize>>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    pub fn start(script: impl FnMut(usize) -> Action + Send + 'static) -> Receiver {
        Receiver::start_on(TcpListener::bind("127.0.0.1:0").unwrap(), script)
    }

    /// Starts on a port chosen earlier (an outage ends).
    pub fn start_at(
        addr: SocketAddr,
        script: impl FnMut(usize) -> Action + Send + 'static,
    ) -> Receiver {
        let deadline = Instant::now() + Duration::from_secs(30);
        let listener = loop {
            match TcpListener::bind(addr) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("cannot bind {addr}: {e}"),
            }
        };
        Receiver::start_on(listener, script)
    }

    fn start_on(
        listener: TcpListener,
        script: impl FnMut(usize) -> Action + Send + 'static,
    ) -> Receiver {
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(0usize));
        let stop = Arc::new(AtomicBool::new(false));
        let script: Arc<Mutex<Script>> = Arc::new(Mutex::new(Box::new(script)));
        {
            let (received, requests, stop) = (received.clone(), requests.clone(), stop.clone());
            listener.set_nonblocking(true).unwrap();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (received, requests, script, stop) = (
                                received.clone(),
                                requests.clone(),
                                script.clone(),
                                stop.clone(),
                            );
                            std::thread::spawn(move || {
                                serve(stream, &received, &requests, &script, &stop)
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
        }
        Receiver {
            addr,
            received,
            requests,
            stop,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A DSN for project 42 on this receiver, behind a path prefix.
    pub fn dsn(&self) -> String {
        format!("http://public@{}/prefix/42", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn requests(&self) -> usize {
        *self.requests.lock().unwrap()
    }

    /// Polls until `done` holds for what was received, for at most `timeout`.
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&[Received]) -> bool,
    ) -> Vec<Received> {
        wait_until(timeout, || done(&self.received()));
        self.received()
    }

    /// Sums the client reports received: `(reason, category) -> quantity`.
    pub fn reported(&self, reason: &str, category: &str) -> u64 {
        reported(&self.received(), reason, category)
    }
}

/// Polls `done` until it holds, for at most `timeout`; whether it held.
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn reported(received: &[Received], reason: &str, category: &str) -> u64 {
    received
        .iter()
        .filter(|r| r.status / 100 == 2)
        .filter_map(|r| r.item("client_report"))
        .flat_map(|report| {
            report["discarded_events"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|d| d["reason"] == reason && d["category"] == category)
        .map(|d| d["quantity"].as_u64().unwrap_or(0))
        .sum()
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(
    stream: TcpStream,
    received: &Mutex<Vec<Received>>,
    requests: &Mutex<usize>,
    script: &Mutex<Script>,
    stop: &AtomicBool,
) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                headers.push((n.trim().to_owned(), v.trim().to_owned()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .expect("the sender gives a content length");
        let n = {
            let mut requests = requests.lock().unwrap();
            *requests += 1;
            *requests - 1
        };
        let action = (script.lock().unwrap())(n);
        if let Action::Cut = action {
            let mut part = vec![0; len / 2];
            let _ = reader.read_exact(&mut part);
            let _ = stream.shutdown(std::net::Shutdown::Both);
            return;
        }
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let (status, extra) = match action {
            Action::Answer(status, extra) => (status, extra),
            Action::Late(delay) => {
                std::thread::sleep(delay);
                (200, Vec::new())
            }
            Action::Cut => unreachable!(),
        };
        let gzip = headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("content-encoding") && v == "gzip");
        assert!(gzip, "bodies are gzip-compressed");
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut raw)
            .expect("a gzip body");
        let parsed = parse(&raw);
        received.lock().unwrap().push(Received {
            path: path.clone(),
            headers: headers.clone(),
            envelope_header: parsed.0,
            items: parsed.1,
            status,
        });
        let mut response = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\n");
        for (name, value) in extra {
            response.push_str(&format!("{name}: {value}\r\n"));
        }
        response.push_str("\r\n{}");
        if stream.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// Parses an envelope with `sentry-types` (it must parse, envelope and items), then
/// as plain JSON for the checks.
fn parse(raw: &[u8]) -> (Value, Vec<(Value, Value)>) {
    use sentry_types::protocol::v7::{Envelope, EnvelopeItem};
    let envelope = Envelope::from_slice(raw).unwrap_or_else(|e| {
        panic!(
            "sentry-types cannot parse the envelope ({e}): {}",
            String::from_utf8_lossy(raw)
        )
    });
    for item in envelope.items() {
        assert!(
            matches!(
                item,
                EnvelopeItem::Event(_)
                    | EnvelopeItem::Transaction(_)
                    | EnvelopeItem::ClientReport(_)
            ),
            "an unexpected item: {item:?}"
        );
    }
    let mut lines = raw.split(|b| *b == b'\n');
    let header: Value = serde_json::from_slice(lines.next().unwrap()).unwrap();
    let mut items = Vec::new();
    let mut rest = &raw[raw.iter().position(|b| *b == b'\n').unwrap() + 1..];
    while !rest.is_empty() {
        let end = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
        let item_header: Value = serde_json::from_slice(&rest[..end]).unwrap();
        let len = item_header["length"].as_u64().unwrap() as usize;
        let payload = &rest[end + 1..end + 1 + len];
        items.push((item_header, serde_json::from_slice(payload).unwrap()));
        rest = rest.get(end + 1 + len + 1..).unwrap_or_default();
    }
    (header, items)
}
