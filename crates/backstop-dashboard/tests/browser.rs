//! Headless Chromium walks every dashboard page from the real standalone server over a
//! seeded store, at 1280px and 375px:
//!
//! - no page scrolls sideways at 375px;
//! - no page logs a console error (a CSP violation included) or throws;
//! - every page has one `h1`;
//! - a screenshot of each goes to `target/dashboard-screenshots/`, and to
//!   `docs/images/dashboard-*.png` when `BACKSTOP_UPDATE_DOCS_IMAGES=1`.
//!
//! The dashboard forbids framing and scripts, so the pages cannot be measured from a
//! harness page; the test drives Chromium over the DevTools protocol instead
//! (device-metrics emulation gives any width, and DevTools evaluation is not bound by
//! the page's CSP).
//!
//! Chromium is Debian's `chromium` (`apt-get install chromium`), or the binary named by
//! `BACKSTOP_CHROMIUM`. If it cannot be started, the test fails.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use backstop_dashboard::DashboardConfig;
use base64::Engine;
use common::seed::Size;
use common::*;
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

const WIDTHS: [(&str, u32, u32); 2] = [("desktop", 1280, 900), ("mobile", 375, 812)];
/// No single DevTools call or page load may take longer than this.
const TIMEOUT: Duration = Duration::from_secs(60);

fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("BACKSTOP_CHROMIUM") {
        return path.into();
    }
    for candidate in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    "chromium".into()
}

/// A headless Chromium, killed when dropped.
struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    ws_url: String,
}

impl Browser {
    fn start() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let binary = chromium();
        let mut child = Command::new(&binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
                "about:blank",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start Chromium at {} ({e}); install it with `apt-get install chromium` or set BACKSTOP_CHROMIUM",
                    binary.display()
                )
            });
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("ws://") {
                    let _ = tx.send(line[at..].trim().to_owned());
                }
            }
        });
        let ws_url = rx
            .recv_timeout(TIMEOUT)
            .expect("Chromium printed no DevTools address");
        Browser {
            child,
            _profile: profile,
            ws_url,
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A DevTools connection with one page attached.
struct Cdp {
    ws: WebSocket<TcpStream>,
    next: u64,
    session: String,
    /// Events received while waiting for answers.
    events: Vec<Value>,
}

impl Cdp {
    fn connect(browser: &Browser) -> Cdp {
        let addr = browser.ws_url["ws://".len()..]
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        let stream = TcpStream::connect(&addr).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let (ws, _) = tungstenite::client(browser.ws_url.as_str(), stream).unwrap();
        let mut cdp = Cdp {
            ws,
            next: 0,
            session: String::new(),
            events: Vec::new(),
        };
        let target = cdp.call("Target.createTarget", json!({"url": "about:blank"}));
        let target = target["targetId"].as_str().unwrap().to_owned();
        let attached = cdp.call(
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
        );
        cdp.session = attached["sessionId"].as_str().unwrap().to_owned();
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            cdp.call(domain, json!({}));
        }
        cdp
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut message = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        self.ws
            .send(Message::Text(message.to_string().into()))
            .unwrap();
        let started = Instant::now();
        loop {
            assert!(started.elapsed() < TIMEOUT, "{method} took too long");
            let Message::Text(text) = self.ws.read().unwrap() else {
                continue;
            };
            let value: Value = serde_json::from_str(&text).unwrap();
            if value["id"] == id {
                if let Some(error) = value.get("error") {
                    panic!("{method} failed: {error}");
                }
                return value["result"].clone();
            }
            self.events.push(value);
        }
    }

    /// Waits for an event, looking first at those already received.
    fn wait_for(&mut self, method: &str) {
        if let Some(at) = self.events.iter().position(|e| e["method"] == method) {
            self.events.remove(at);
            return;
        }
        let started = Instant::now();
        loop {
            assert!(started.elapsed() < TIMEOUT, "no {method}");
            let Message::Text(text) = self.ws.read().unwrap() else {
                continue;
            };
            let value: Value = serde_json::from_str(&text).unwrap();
            if value["method"] == method {
                return;
            }
            self.events.push(value);
        }
    }

    fn navigate(&mut self, url: &str) {
        self.events.clear();
        self.call("Page.navigate", json!({"url": url}));
        self.wait_for("Page.loadEventFired");
    }

    fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        );
        result["result"]["value"].clone()
    }

    /// Console errors, uncaught exceptions and error log entries (CSP violations,
    /// failed loads) since the last navigation.
    fn errors(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e["method"].as_str()? {
                "Runtime.exceptionThrown" => Some(e["params"]["exceptionDetails"].to_string()),
                "Runtime.consoleAPICalled" if e["params"]["type"] == "error" => {
                    Some(e["params"]["args"].to_string())
                }
                "Log.entryAdded" if e["params"]["entry"]["level"] == "error" => {
                    Some(e["params"]["entry"]["text"].to_string())
                }
                _ => None,
            })
            .collect()
    }
}

fn screenshot_dirs() -> Vec<PathBuf> {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("dashboard-screenshots");
    let mut dirs = vec![target];
    if std::env::var_os("BACKSTOP_UPDATE_DOCS_IMAGES").is_some_and(|v| v == "1") {
        dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/images"));
    }
    for dir in &dirs {
        std::fs::create_dir_all(dir).unwrap();
    }
    dirs
}

#[test]
fn every_page_in_headless_chromium_at_desktop_and_phone_width() {
    let config = DashboardConfig::new()
        .token(TOKEN)
        .pipeline_stats(busy_pipeline);
    let server = start(Size::SMALL, "", config);
    let cookie = login(server.addr);
    let pages = every_page(server.addr, &cookie);
    let base = format!("http://127.0.0.1:{}", server.addr.port());

    let browser = Browser::start();
    let mut cdp = Cdp::connect(&browser);
    // The login URL sets the browser's cookie and lands on the overview.
    cdp.navigate(&format!("{base}/_backstop/?token={TOKEN}"));
    assert_eq!(
        cdp.eval("document.querySelector('h1') && document.querySelector('h1').textContent"),
        "Overview"
    );

    let dirs = screenshot_dirs();
    let mut failures = Vec::new();
    for (label, width, height) in WIDTHS {
        cdp.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600}),
        );
        for (name, path) in &pages {
            cdp.navigate(&format!("{base}{path}"));
            let at = format!("{name} at {width}px");
            let m = cdp.eval(
                "JSON.stringify({sw: Math.max(document.documentElement.scrollWidth, document.body.scrollWidth), \
                 cw: document.documentElement.clientWidth, h1: document.querySelectorAll('h1').length, \
                 scripts: document.scripts.length, css: document.styleSheets.length})",
            );
            let m: Value = serde_json::from_str(m.as_str().unwrap()).unwrap();
            if m["sw"].as_f64() > m["cw"].as_f64() {
                failures.push(format!("{at}: scrolls sideways ({m})"));
            }
            if m["h1"] != 1 {
                failures.push(format!("{at}: expected one h1 ({m})"));
            }
            if m["scripts"] != 0 {
                failures.push(format!("{at}: has scripts"));
            }
            if m["css"] != 1 {
                failures.push(format!("{at}: the stylesheet did not load ({m})"));
            }
            for error in cdp.errors() {
                failures.push(format!("{at}: console error {error}"));
            }
            let shot = cdp.call("Page.captureScreenshot", json!({"format": "png"}));
            let png = base64::engine::general_purpose::STANDARD
                .decode(shot["data"].as_str().unwrap())
                .unwrap();
            assert!(png.len() > 4_000, "{at}: the screenshot looks blank");
            for dir in &dirs {
                std::fs::write(dir.join(format!("dashboard-{name}-{label}.png")), &png).unwrap();
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
