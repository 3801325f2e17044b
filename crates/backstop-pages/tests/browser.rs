//! Headless Chromium loads every default page, the debug page and the custom-pages
//! example from a real HTTP server on 127.0.0.1, at desktop (1280px) and mobile (375px)
//! widths, in light and dark mode.
//!
//! - Screenshots go to `target/page-screenshots/`.
//! - Each page must show exactly one `h1` with the status's title, visible in the first
//!   screen, not covered, and readable (contrast at least 4.5:1 against its background).
//! - At 375px no page may scroll sideways.
//!
//! Chromium's new headless mode will not make a window narrower than 500px, so the
//! layout checks load each page into a same-origin iframe of the exact width (media
//! queries and `clientWidth` then see that width), while screenshots are taken with
//! `--window-size`, which Chromium emulates at any width.
//!
//! Chromium is Debian's `chromium` (`apt-get install chromium`), or the binary named by
//! `BACKSTOP_CHROMIUM`. If it cannot be started, the test fails.

#[path = "../../../examples/custom_pages/src/site.rs"]
mod site;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backstop_pages::{
    BacktraceFrame, DebugDetails, ErrorPages, PageContext, STATUSES, Theme, maud::html,
};
use http::{HeaderValue, Method, StatusCode, header};
use serde_json::Value;

const DESKTOP: (u32, u32) = (1280, 800);
const MOBILE: (u32, u32) = (375, 812);
/// No single Chromium run may take longer than this.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// The configurations served, by URL prefix.
struct Site {
    /// The default content and colours, with a brand, support and footer links.
    branded: ErrorPages,
    /// `ErrorPages::default()`: no theme at all.
    plain: ErrorPages,
    /// The debug page.
    debug: ErrorPages,
    /// The custom-pages example.
    custom: ErrorPages,
}

impl Site {
    fn new() -> Self {
        let branded = ErrorPages::new(
            Theme::new("Acme")
                .home_url("/")
                .support_email("help@acme.example")
                .footer_link("Status", "/status")
                .footer_link("Privacy", "/privacy")
                .footer_link("Terms", "/terms"),
        );
        Self {
            debug: branded.clone().debug(true),
            branded,
            plain: ErrorPages::default(),
            custom: site::error_pages(),
        }
    }

    fn pages(&self, kind: &str) -> Option<&ErrorPages> {
        match kind {
            "default" => Some(&self.branded),
            "plain" => Some(&self.plain),
            "debug" => Some(&self.debug),
            "custom" => Some(&self.custom),
            _ => None,
        }
    }
}

/// What the server puts in the context for a status, so every part of the page shows.
fn context_for(status: StatusCode, path: &str) -> PageContext {
    let mut ctx = PageContext::new(Method::GET, path);
    if status.is_server_error() {
        ctx = ctx.with_event_id("0f8e2d4c6b1a4f3e9d7c5b3a1f2e4d6c");
    }
    match status.as_u16() {
        400 => ctx.with_detail("Failed to parse the request body as JSON: expected value at line 1 column 1"),
        422 => ctx.with_detail("Failed to deserialize the JSON body into the target type: email: invalid type: integer `42`, expected a string at line 1 column 11"),
        401 => ctx.with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")),
        405 => ctx.with_header(header::ALLOW, HeaderValue::from_static("GET, HEAD")),
        429 | 503 => ctx.with_header(header::RETRY_AFTER, HeaderValue::from_static("30")),
        _ => ctx,
    }
}

fn debug_details() -> DebugDetails {
    let mut details = DebugDetails::new(
        "called `Result::unwrap()` on an `Err` value: Error { kind: ConnectionRefused, message: \"connection refused while talking to postgres://orders-db.internal:5432/orders_production\" }",
    )
    .with_cause("error communicating with database: Connection refused (os error 111)")
    .with_cause("Connection refused (os error 111)")
    .with_request_field("host", "shop.acme.example")
    .with_request_field("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36")
    .with_request_field("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8");
    for (i, (function, file, in_app)) in [
        ("shop::orders::repository::OrderRepository::load_with_line_items_and_customer", "src/orders/repository.rs", true),
        ("shop::orders::handlers::show_order::{{closure}}", "src/orders/handlers.rs", true),
        ("<axum::handler::HandlerService<H,T,S> as tower_service::Service<http::request::Request<B>>>::call", "/home/dev/.cargo/registry/src/index.crates.io-6f17d22bba15001f/axum-0.8.4/src/handler/service.rs", false),
        ("tokio::runtime::task::core::Core<T,S>::poll", "/home/dev/.cargo/registry/src/index.crates.io-6f17d22bba15001f/tokio-1.45.0/src/runtime/task/core.rs", false),
    ]
    .into_iter()
    .enumerate()
    {
        details = details.with_frame(BacktraceFrame::new(function).at(file, 40 + i as u32).in_app(in_app));
    }
    details
}

/// One page the browser loads.
struct Case {
    /// File-name friendly, such as `default-404`.
    name: String,
    url_path: String,
    title: String,
}

fn cases(site: &Site) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut add = |kind: &str, status: StatusCode, suffix: &str| {
        let url_path = format!("/{kind}/{}{suffix}", status.as_u16());
        let ctx = context_for(status, &url_path);
        let pages = site.pages(kind).expect("known kind");
        let title = pages.page_for(status, &ctx).title().to_owned();
        let name = if suffix.is_empty() {
            format!("{kind}-{}", status.as_u16())
        } else {
            format!("{kind}-{}-long-path", status.as_u16())
        };
        cases.push(Case {
            name,
            url_path,
            title,
        });
    };
    for status in STATUSES {
        add("default", status, "");
    }
    // A long path with no place to break must not push the page sideways.
    let long = format!("/{}", "a-very-long-segment_without_spaces".repeat(8));
    add("default", StatusCode::NOT_FOUND, &long);
    add("plain", StatusCode::NOT_FOUND, "");
    add("debug", StatusCode::INTERNAL_SERVER_ERROR, "");
    for status in [
        StatusCode::NOT_FOUND,
        StatusCode::INTERNAL_SERVER_ERROR,
        StatusCode::FORBIDDEN,
        StatusCode::BAD_REQUEST,
    ] {
        add("custom", status, "");
    }
    cases
}

// The server --------------------------------------------------------------------------

fn start_server(site: Arc<Site>, cases: Arc<Vec<Case>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local addr");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (site, cases) = (site.clone(), cases.clone());
            std::thread::spawn(move || {
                let _ = serve(stream, &site, &cases);
            });
        }
    });
    addr
}

fn serve(mut stream: TcpStream, site: &Site, cases: &[Case]) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut accept = None;
    loop {
        let mut header_line = String::new();
        if reader.read_line(&mut header_line)? == 0 || header_line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header_line.split_once(':')
            && name.trim().eq_ignore_ascii_case("accept")
        {
            accept = HeaderValue::from_str(value.trim()).ok();
        }
    }

    let mut segments = target.trim_start_matches('/').splitn(3, '/');
    let kind = segments.next().unwrap_or("");
    let arg = segments.next().unwrap_or("");
    let response = if kind == "check" {
        let width: u32 = arg.parse().unwrap_or(MOBILE.0);
        let mut response = http::Response::new(harness(cases, width));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        response
    } else if let (Some(pages), Ok(code)) = (site.pages(kind), arg.parse::<u16>()) {
        let status = StatusCode::from_u16(code).expect("status");
        let mut ctx = context_for(status, &target);
        if kind == "debug" {
            ctx = ctx.with_debug(debug_details());
        }
        pages.render(status, &ctx, accept.as_ref(), false)
    } else {
        let mut response = http::Response::new(String::new());
        *response.status_mut() = StatusCode::NOT_FOUND;
        response
    };

    let (head, body) = response.into_parts();
    let mut out = format!("HTTP/1.1 {}\r\n", head.status).into_bytes();
    for (name, value) in &head.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(
        format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body.as_bytes());
    stream.write_all(&out)?;
    stream.flush()
}

/// A page that loads every case into an iframe of the given width and, once they have
/// all loaded, writes what it measured into `<pre id="results">`.
fn harness(cases: &[Case], width: u32) -> String {
    html! {
        (backstop_pages::maud::DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { "layout check" } }
            body style="margin:0" {
                @for case in cases {
                    iframe data-name=(case.name) src=(case.url_path) width=(width) height=(MOBILE.1)
                        style="border:0;display:block" {}
                }
                script { (backstop_pages::maud::PreEscaped(CHECK_SCRIPT)) }
            }
        }
    }
    .into_string()
}

const CHECK_SCRIPT: &str = r#"
function luminance(rgb) {
  var c = rgb.match(/[\d.]+/g).slice(0, 3).map(function (v) {
    v = v / 255;
    return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
  });
  return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
}
function backgroundOf(el, win) {
  for (; el; el = el.parentElement) {
    var bg = win.getComputedStyle(el).backgroundColor;
    var parts = bg.match(/[\d.]+/g);
    if (parts && (parts.length < 4 || parseFloat(parts[3]) > 0.5)) return bg;
  }
  return "rgb(255, 255, 255)";
}
function check(frame) {
  var r = { name: frame.dataset.name };
  var doc = frame.contentDocument, win = frame.contentWindow;
  if (!doc || !doc.body) { r.error = "no document"; return r; }
  var root = doc.documentElement;
  r.lang = root.getAttribute("lang");
  r.viewportMeta = !!doc.querySelector('meta[name="viewport"]');
  r.scripts = doc.querySelectorAll("script").length;
  r.clientWidth = root.clientWidth;
  r.scrollWidth = Math.max(root.scrollWidth, doc.body.scrollWidth);
  r.innerHeight = win.innerHeight;
  r.dark = win.matchMedia("(prefers-color-scheme: dark)").matches;
  r.bodyBackground = win.getComputedStyle(doc.body).backgroundColor;
  var h1s = doc.querySelectorAll("h1");
  r.h1Count = h1s.length;
  if (!h1s.length) return r;
  var h = h1s[0], box = h.getBoundingClientRect(), style = win.getComputedStyle(h);
  r.title = h.textContent;
  r.box = [box.left, box.top, box.right, box.bottom];
  r.shown = style.display !== "none" && style.visibility === "visible" && parseFloat(style.opacity) > 0;
  var hit = doc.elementFromPoint(box.left + Math.min(box.width / 2, 20), box.top + box.height / 2);
  r.onTop = !!hit && (hit === h || h.contains(hit));
  var fg = luminance(style.color), bg = luminance(backgroundOf(h, win));
  r.contrast = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
  return r;
}
addEventListener("load", function () {
  var results = Array.prototype.map.call(document.querySelectorAll("iframe"), check);
  var pre = document.createElement("pre");
  pre.id = "results";
  pre.textContent = JSON.stringify(results);
  document.body.appendChild(pre);
});
"#;

// Chromium ----------------------------------------------------------------------------

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

/// Runs Chromium headless with a fresh profile and returns its standard output. Panics
/// if it cannot start, fails, or runs past [`RUN_TIMEOUT`].
fn run_chromium(args: &[String]) -> String {
    let profile = tempfile::tempdir().expect("temp dir");
    let stdout_path = profile.path().join("stdout");
    let stderr_path = profile.path().join("stderr");
    let binary = chromium();
    let mut child = Command::new(&binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!(
            "--user-data-dir={}",
            profile.path().join("profile").display()
        ))
        .args(args)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .unwrap_or_else(|error| {
            panic!(
                "cannot start Chromium at {} ({error}); install it with \
                 `apt-get install chromium` or set BACKSTOP_CHROMIUM",
                binary.display()
            )
        });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for Chromium") {
            break status;
        }
        if started.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("Chromium took longer than {RUN_TIMEOUT:?} for {args:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(
        status.success(),
        "Chromium failed ({status}) for {args:?}:\n{}",
        stderr.lines().rev().take(20).collect::<Vec<_>>().join("\n")
    );
    fs::read_to_string(&stdout_path).expect("Chromium output")
}

fn screenshot_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is `<target>/tmp`.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("page-screenshots");
    fs::create_dir_all(&dir).expect("create screenshot dir");
    dir
}

/// Width and height from a PNG's header.
fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.len() < 24 || &bytes[..8] != b"\x89PNG\r\n\x1a\n" {
        return None;
    }
    let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    Some((word(16), word(20)))
}

/// Loads the harness at a width and returns what it measured, by case name.
fn measure(addr: SocketAddr, width: u32, dark: bool) -> Vec<Value> {
    let mut args = vec![
        "--dump-dom".to_owned(),
        format!("http://{addr}/check/{width}"),
    ];
    if dark {
        args.insert(0, "--force-dark-mode".to_owned());
        args.insert(0, "--blink-settings=preferredColorScheme=0".to_owned());
    }
    let dom = run_chromium(&args);
    let start = dom
        .find("<pre id=\"results\">")
        .unwrap_or_else(|| panic!("the check page did not finish loading:\n{dom:.2000}"))
        + "<pre id=\"results\">".len();
    let end = start + dom[start..].find("</pre>").expect("end of results");
    let json = dom[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&");
    match serde_json::from_str(&json).expect("results are JSON") {
        Value::Array(results) => results,
        other => panic!("unexpected results: {other}"),
    }
}

#[test]
fn pages_render_in_headless_chromium() {
    let started = Instant::now();
    let site = Arc::new(Site::new());
    let cases = Arc::new(cases(&site));
    let addr = start_server(site.clone(), cases.clone());

    // Layout: every page at both widths, and at mobile width in dark mode.
    let mut failures = Vec::new();
    for (width, dark) in [(MOBILE.0, false), (DESKTOP.0, false), (MOBILE.0, true)] {
        let results = measure(addr, width, dark);
        assert_eq!(results.len(), cases.len(), "one result per page");
        for (case, result) in cases.iter().zip(&results) {
            let mode = if dark { "dark" } else { "light" };
            let at = format!("{} at {width}px ({mode})", case.name);
            let mut fail = |what: String| failures.push(format!("{at}: {what}: {result}"));
            if result.get("error").is_some() {
                fail("did not load".into());
                continue;
            }
            if result["h1Count"] != 1 {
                fail("expected exactly one h1".into());
                continue;
            }
            if result["title"] != case.title.as_str() {
                fail(format!("h1 is not {:?}", case.title));
            }
            if result["shown"] != true || result["onTop"] != true {
                fail("h1 hidden or covered".into());
            }
            let num = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
            let client_width = num(&result["clientWidth"]);
            let [left, top, right, bottom] = [0, 1, 2, 3].map(|i| num(&result["box"][i]));
            if !(left >= 0.0
                && right <= client_width + 0.5
                && top >= 0.0
                && bottom <= num(&result["innerHeight"]))
            {
                fail("h1 not inside the first screen".into());
            }
            if num(&result["contrast"]) < 4.5 {
                fail("h1 contrast below 4.5:1".into());
            }
            if num(&result["scrollWidth"]) > client_width {
                fail("horizontal scrollbar".into());
            }
            if result["lang"].as_str().is_none_or(str::is_empty) || result["viewportMeta"] != true {
                fail("missing lang or viewport meta".into());
            }
            if result["scripts"] != 0 {
                fail("page has scripts".into());
            }
            if result["dark"] != dark {
                fail(format!("prefers-color-scheme: dark should be {dark}"));
            }
            if dark && result["bodyBackground"] == "rgb(243, 244, 248)" {
                fail("dark mode not applied".into());
            }
        }
    }
    assert!(
        failures.is_empty(),
        "layout problems:\n{}",
        failures.join("\n")
    );

    // Screenshots, two Chromiums at a time.
    let dir = screenshot_dir();
    let mut jobs: Vec<(String, (u32, u32), Vec<String>)> = Vec::new();
    for case in cases.iter() {
        for (label, size) in [("desktop", DESKTOP), ("mobile", MOBILE)] {
            let file = dir.join(format!("{}-{label}.png", case.name));
            jobs.push((
                file.display().to_string(),
                size,
                vec![
                    "--hide-scrollbars".into(),
                    format!("--window-size={},{}", size.0, size.1),
                    format!("--screenshot={}", file.display()),
                    format!("http://{addr}{}", case.url_path),
                ],
            ));
        }
    }
    for name in ["default-404", "default-500"] {
        let file = dir.join(format!("{name}-mobile-dark.png"));
        let path = &cases
            .iter()
            .find(|c| c.name == name)
            .expect("case")
            .url_path;
        jobs.push((
            file.display().to_string(),
            MOBILE,
            vec![
                "--blink-settings=preferredColorScheme=0".into(),
                "--force-dark-mode".into(),
                "--hide-scrollbars".into(),
                format!("--window-size={},{}", MOBILE.0, MOBILE.1),
                format!("--screenshot={}", file.display()),
                format!("http://{addr}{path}"),
            ],
        ));
    }
    for (file, _, _) in &jobs {
        let _ = fs::remove_file(file);
    }
    let queue = Arc::new(Mutex::new(jobs.clone()));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let queue = queue.clone();
            std::thread::spawn(move || {
                loop {
                    let job = queue.lock().expect("queue").pop();
                    let Some((_, _, args)) = job else { break };
                    run_chromium(&args);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("a Chromium run failed");
    }
    for (file, (width, height), _) in &jobs {
        let bytes = fs::read(file).unwrap_or_else(|e| panic!("no screenshot {file}: {e}"));
        assert_eq!(png_size(&bytes), Some((*width, *height)), "{file}");
        // A blank page compresses to a few hundred bytes; a rendered one does not.
        assert!(
            bytes.len() > 4_000,
            "{file} looks blank ({} bytes)",
            bytes.len()
        );
    }
    eprintln!(
        "{} pages checked, {} screenshots in {} ({:.1?})",
        cases.len(),
        jobs.len(),
        dir.display(),
        started.elapsed()
    );
}
