//! Custom error pages: a team's own site layout around Backstop's default content.
//!
//! ```text
//! cargo run -p custom_pages
//! ```
//!
//! Then open <http://127.0.0.1:3002/> (or set `BACKSTOP_DEMO_ADDR`). Every link on the
//! home page leads to an error page; try them with `curl -H 'Accept: application/json'`
//! too. The site's look lives in `site.rs`; this file is a tiny HTTP server so the
//! example needs no web framework.

mod site;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};

use backstop_pages::{ErrorPages, PageContext};
use http::{HeaderValue, Method, StatusCode, header};
use maud::{DOCTYPE, html};

fn main() -> std::io::Result<()> {
    let addr = std::env::var("BACKSTOP_DEMO_ADDR").unwrap_or_else(|_| "127.0.0.1:3002".into());
    let listener = TcpListener::bind(&addr)?;
    println!("custom pages on http://{addr}/");
    let pages = site::error_pages();
    for stream in listener.incoming() {
        let pages = pages.clone();
        let Ok(stream) = stream else { continue };
        std::thread::spawn(move || {
            if let Err(error) = serve(stream, &pages) {
                eprintln!("connection failed: {error}");
            }
        });
    }
    Ok(())
}

/// Reads one request and answers it.
fn serve(mut stream: TcpStream, pages: &ErrorPages) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
    let method =
        Method::from_bytes(parts.next().unwrap_or("GET").as_bytes()).unwrap_or(Method::GET);
    let target = parts.next().unwrap_or("/").to_owned();
    let mut accept = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        match line.split_once(':') {
            Some((name, value)) if name.trim().eq_ignore_ascii_case("accept") => {
                accept = HeaderValue::from_str(value.trim()).ok();
            }
            _ => {}
        }
    }

    let response = respond(pages, method.clone(), &target, accept.as_ref());
    let (head, body) = response.into_parts();
    write!(stream, "HTTP/1.1 {}\r\n", head.status)?;
    for (name, value) in &head.headers {
        stream.write_all(name.as_str().as_bytes())?;
        stream.write_all(b": ")?;
        stream.write_all(value.as_bytes())?;
        stream.write_all(b"\r\n")?;
    }
    write!(
        stream,
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )?;
    if method != Method::HEAD {
        stream.write_all(body.as_bytes())?;
    }
    stream.flush()
}

/// The site's routes. In a real service the Backstop layer does this: it sees the
/// status, records an event, and asks the pages for the body.
fn respond(
    pages: &ErrorPages,
    method: Method,
    target: &str,
    accept: Option<&HeaderValue>,
) -> http::Response<String> {
    let is_head = method == Method::HEAD;
    let path = target.split('?').next().unwrap_or("/");
    let ctx = PageContext::new(method, target);
    let status = match path {
        "/" => return home(),
        "/panic" => StatusCode::INTERNAL_SERVER_ERROR,
        "/forbidden" => StatusCode::FORBIDDEN,
        "/bad-request" => StatusCode::BAD_REQUEST,
        "/account" => StatusCode::UNAUTHORIZED,
        "/busy" => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::NOT_FOUND,
    };
    let ctx = match status {
        StatusCode::INTERNAL_SERVER_ERROR => ctx.with_event_id("7c9e6679742540de944be07fc1f90ae7"),
        StatusCode::BAD_REQUEST => ctx.with_detail("Invalid query string: `size` must be a number"),
        StatusCode::TOO_MANY_REQUESTS => {
            ctx.with_header(header::RETRY_AFTER, HeaderValue::from_static("30"))
        }
        _ => ctx,
    };
    pages.render(status, &ctx, accept, is_head)
}

/// A plain home page listing the error pages.
fn home() -> http::Response<String> {
    let body = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Northwind Outfitters: custom error pages" }
            }
            body {
                h1 { "Custom error pages" }
                ul {
                    li { a href="/no/such/trail" { "404: an unknown path" } }
                    li { a href="/panic" { "500: a handler that panicked" } }
                    li { a href="/forbidden" { "403: forbidden" } }
                    li { a href="/bad-request" { "400: a bad request" } }
                    li { a href="/account" { "401: sign in first" } }
                    li { a href="/busy" { "429: too many requests" } }
                }
            }
        }
    };
    let mut response = http::Response::new(body.into_string());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}
