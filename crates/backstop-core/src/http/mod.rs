//! What the tower layer and the actix middleware share of HTTP: the request's facts and
//! the rules about HTTP, written once. The request lifecycle that applies them lives in
//! `crate::exchange`, above the scope and the client; these facts sit below the scope
//! that holds them.
//!
//! - the request's facts, copied once at start ([`RequestFacts`], [`HttpRequest`]), and
//!   how a record's request context is built from them ([`BuildRequest`]);
//! - which responses are recorded as errors ([`HttpOptions::captures`]);
//! - which error responses get a branded page ([`PagePolicy`]);
//! - how transactions are named ([`transaction_name`]);
//! - the client's IP behind trusted proxies ([`HttpOptions::client_ip`]);
//! - the request id ([`is_valid_request_id`], [`new_request_id`]);
//! - which bodies may be captured ([`HttpOptions::body_limit_for`]);
//! - how a request becomes Sentry's request context ([`build_request`]).
//!
//! ```
//! use backstop_core::adapter::{HttpOptions, PageDecision, transaction_name};
//!
//! let http = HttpOptions::new().trust_proxy("10.0.0.0/8".parse::<backstop_core::adapter::IpNet>().unwrap());
//! assert_eq!(transaction_name("GET", Some("/users/{id}")), "GET /users/{id}");
//! assert_eq!(transaction_name("GET", None), "GET <unmatched>");
//! // axum's empty 404 gets a page; a JSON 404 from the handler is left alone.
//! assert_eq!(http.page_decision(404, None, Some(0)), PageDecision::Replace { detail_from_body: false });
//! assert_eq!(http.page_decision(404, Some(b"application/json"), Some(20)), PageDecision::Keep);
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::RangeInclusive;

pub use ipnet::IpNet;
use serde_json::Value;

mod body;
mod client_ip;
mod facts;
mod routes;
#[cfg(test)]
mod tests;

pub use body::{BodyCapture, Tee};
pub(crate) use facts::CopiedRequest;
pub use facts::{
    BuildRequest, FlatHeaders, FlatRequest, FlatView, HttpRequest, RequestFacts, RequestSource,
    StartHeaders,
};
pub use routes::{RouteName, StaticRoutes};

use crate::protocol::{Event, Exception, Level, Mechanism, Request, Values};

/// How an error response's body is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageRule {
    /// Leave the response as the handler made it.
    Keep,
    /// Replace empty and `text/plain` bodies (the framework's defaults and extractor
    /// rejections), keeping the plain text as the page's detail. Leave HTML, JSON and
    /// everything else alone: the handler meant it.
    ReplaceEmptyOrPlainText,
    /// Always replace the body with the branded page.
    Always,
}

/// Which error responses are rewritten into branded pages: a default rule, and rules
/// per status.
///
/// ```
/// use backstop_core::adapter::{PagePolicy, PageRule};
/// let policy = PagePolicy::default()           // empty or plain-text bodies
///     .status(404, PageRule::Always)           // every 404 gets the page
///     .status(422, PageRule::Keep);            // validation errors stay as they are
/// # drop(policy);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PagePolicy {
    default: PageRule,
    per_status: Vec<(u16, PageRule)>,
}

impl Default for PagePolicy {
    fn default() -> Self {
        PagePolicy {
            default: PageRule::ReplaceEmptyOrPlainText,
            per_status: Vec::new(),
        }
    }
}

impl PagePolicy {
    /// Replace every error body.
    pub fn always() -> Self {
        PagePolicy {
            default: PageRule::Always,
            per_status: Vec::new(),
        }
    }

    /// Never replace a body.
    pub fn never() -> Self {
        PagePolicy {
            default: PageRule::Keep,
            per_status: Vec::new(),
        }
    }

    /// A rule for one status, overriding the default.
    #[must_use]
    pub fn status(mut self, status: u16, rule: PageRule) -> Self {
        self.per_status.retain(|(s, _)| *s != status);
        self.per_status.push((status, rule));
        self
    }

    /// The rule for a status.
    pub fn rule_for(&self, status: u16) -> PageRule {
        self.per_status
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(self.default, |(_, rule)| *rule)
    }
}

/// What to do with an error response's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageDecision {
    /// Pass it through untouched (and unbuffered).
    Keep,
    /// Replace it with the page. With `detail_from_body`, read the (plain-text, small)
    /// body first and show it as the page's detail.
    Replace {
        /// Whether the original body holds text worth keeping as the detail.
        detail_from_body: bool,
    },
}

/// The largest plain-text body read to become a page's detail; a longer one is left out
/// (the page goes without a detail), since a cut rejection message would mislead.
pub const MAX_DETAIL_BYTES: usize = 4096;

/// HTTP settings both adapters take, with the same defaults.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub(crate) capture: Vec<RangeInclusive<u16>>,
    pages: PagePolicy,
    trusted_proxies: Vec<IpNet>,
    request_id_header: http::HeaderName,
    body_limit: Option<usize>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpOptions {
    /// Defaults: record every 5xx; replace empty and plain-text error bodies; trust no
    /// proxy; `X-Request-Id`; no body capture.
    pub fn new() -> Self {
        HttpOptions {
            capture: vec![500..=599],
            pages: PagePolicy::default(),
            trusted_proxies: Vec::new(),
            request_id_header: http::HeaderName::from_static("x-request-id"),
            body_limit: None,
        }
    }

    /// The statuses recorded as error events (default: all 5xx). Replaces the default.
    #[must_use]
    pub fn capture_statuses(
        mut self,
        ranges: impl IntoIterator<Item = RangeInclusive<u16>>,
    ) -> Self {
        self.capture = ranges.into_iter().collect();
        self
    }

    /// Which error responses become branded pages.
    #[must_use]
    pub fn page_policy(mut self, policy: PagePolicy) -> Self {
        self.pages = policy;
        self
    }

    /// Trusts a proxy (an address or a network): `X-Forwarded-For` and `Forwarded`
    /// are believed only when the peer is one of these.
    #[must_use]
    pub fn trust_proxy(mut self, net: impl Into<IpNet>) -> Self {
        self.trusted_proxies.push(net.into());
        self
    }

    /// The header read and echoed as the request id (default `X-Request-Id`).
    #[must_use]
    pub fn request_id_header(mut self, name: http::HeaderName) -> Self {
        self.request_id_header = name;
        self
    }

    /// Captures JSON and form request bodies up to `max_bytes` (scrubbed like
    /// everything else). Off by default. The handler still receives the body intact.
    #[must_use]
    pub fn capture_bodies(mut self, max_bytes: usize) -> Self {
        self.body_limit = Some(max_bytes);
        self
    }

    /// The page policy.
    pub fn pages(&self) -> &PagePolicy {
        &self.pages
    }

    /// The request id header's name.
    pub fn request_id_header_name(&self) -> &http::HeaderName {
        &self.request_id_header
    }

    /// What to do with an error response's body, from its status, `Content-Type` and
    /// length (when known).
    pub fn page_decision(
        &self,
        status: u16,
        content_type: Option<&[u8]>,
        body_len: Option<u64>,
    ) -> PageDecision {
        if status < 400 {
            return PageDecision::Keep;
        }
        let empty = body_len == Some(0);
        let plain = content_type.is_some_and(|ct| {
            let ct = std::str::from_utf8(ct).unwrap_or("");
            ct.split(';')
                .next()
                .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("text/plain"))
        });
        match self.pages.rule_for(status) {
            PageRule::Keep => PageDecision::Keep,
            PageRule::Always => PageDecision::Replace {
                detail_from_body: plain && !empty,
            },
            PageRule::ReplaceEmptyOrPlainText => {
                if empty && (content_type.is_none() || plain) {
                    PageDecision::Replace {
                        detail_from_body: false,
                    }
                } else if plain {
                    PageDecision::Replace {
                        detail_from_body: true,
                    }
                } else {
                    PageDecision::Keep
                }
            }
        }
    }

    /// How many bytes of this request's body to capture, if any: only when capture is
    /// on, and only for JSON and form bodies.
    pub fn body_limit_for(&self, content_type: Option<&[u8]>) -> Option<usize> {
        self.body_limit_with(|| content_type)
    }

    /// [`body_limit_for`](Self::body_limit_for), reading the `Content-Type` only when
    /// capture is on: off (the default), a request costs no header lookup for it.
    pub fn body_limit_with<'a>(
        &self,
        content_type: impl FnOnce() -> Option<&'a [u8]>,
    ) -> Option<usize> {
        let limit = self.body_limit?;
        let ct = std::str::from_utf8(content_type()?)
            .ok()?
            .to_ascii_lowercase();
        let mime = ct.split(';').next()?.trim().to_owned();
        let capturable = mime == "application/json"
            || mime.ends_with("+json")
            || mime == "application/x-www-form-urlencoded";
        capturable.then_some(limit)
    }
}

/// Whether an incoming request id can be trusted and echoed: 1 to 128 of
/// `A-Z a-z 0-9 - _ . : / + = @`, the characters ids are made of. Adapters reuse a
/// valid incoming id as is and make one with [`new_request_id`] otherwise.
pub fn is_valid_request_id(value: &[u8]) -> bool {
    let sane = |b: &u8| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(b);
    (1..=128).contains(&value.len()) && value.iter().all(sane)
}

/// A new random request id: 32 lowercase hex digits, built without allocating.
pub fn new_request_id() -> [u8; 32] {
    crate::protocol::lower_hex(fastrand::u128(..))
}

/// A [`new_request_id`] as shared bytes, for a response header: the ids are cut from
/// one 4 KiB block per thread, so a request costs no allocation of its own. A block
/// is freed when the last of its 128 ids is (a header value kept for long keeps its
/// whole block).
pub fn new_request_id_bytes() -> bytes::Bytes {
    const BLOCK: usize = 4096;
    thread_local! {
        static IDS: std::cell::RefCell<bytes::BytesMut> =
            std::cell::RefCell::new(bytes::BytesMut::new());
    }
    let id = new_request_id();
    IDS.try_with(|block| {
        let mut block = block.try_borrow_mut().ok()?;
        if block.capacity() < id.len() {
            *block = bytes::BytesMut::with_capacity(BLOCK);
        }
        block.extend_from_slice(&id);
        Some(block.split().freeze())
    })
    .ok()
    .flatten()
    // The thread is ending: one allocation, as before.
    .unwrap_or_else(|| bytes::Bytes::copy_from_slice(&id))
}

/// `METHOD /route/{param}`, or `METHOD <unmatched>` when no route matched. The raw path
/// is never used: it is unbounded and may hold personal data.
pub fn transaction_name(method: &str, route: Option<&str>) -> String {
    transaction_name_pieces(method, route).concat()
}

/// The pieces of [`transaction_name`], for writing it without formatting.
pub(crate) fn transaction_name_pieces<'a>(method: &'a str, route: Option<&'a str>) -> [&'a str; 3] {
    [method, " ", route.unwrap_or(UNMATCHED)]
}

/// What stands for the route of a request that matched none.
const UNMATCHED: &str = "<unmatched>";

/// Headers listed as name/value pairs (as another `http` version lists them:
/// actix-web 4 speaks `http` 0.2) in an `http` 1 map; a pair it rejects is skipped.
pub fn header_map<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> http::HeaderMap {
    let pairs = pairs.into_iter();
    let mut map = http::HeaderMap::with_capacity(pairs.size_hint().0);
    for (name, value) in pairs {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_bytes(value),
        ) {
            map.append(name, value);
        }
    }
    map
}

/// A request from another `http` version's method, URI and headers (as
/// [`header_map`] takes them); `None` when `http` 1 rejects the method or the URI.
pub fn request_from<'a, B>(
    method: &str,
    uri: &str,
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    body: B,
) -> Option<http::Request<B>> {
    let mut request = http::Request::builder()
        .method(method)
        .uri(uri)
        .body(body)
        .ok()?;
    *request.headers_mut() = header_map(headers);
    Some(request)
}

/// Headers of the original response that a page rewrite drops: they describe the old
/// body. Every other header (`Set-Cookie`, `Allow`, `Retry-After`, the team's own)
/// survives.
pub const REPLACED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "content-encoding",
    "content-range",
    "content-disposition",
    "content-language",
    "content-location",
    "content-md5",
    "transfer-encoding",
    "etag",
    "last-modified",
];

/// The event for an error response whose handler attached its error: the error and
/// its `source()` chain, unhandled, with the status as a tag.
pub fn error_response_event<E: std::error::Error + ?Sized>(error: &E, status: u16) -> Event {
    let mut event = crate::capture::error::error_event(error);
    if let Some(top) = event.exception.values.last_mut() {
        top.mechanism = Some(Mechanism::new("http", false));
    }
    event
        .tags
        .insert("http.status_code".into(), status.to_string());
    event
}

/// The event for an error response with no error object (a bare
/// `StatusCode::INTERNAL_SERVER_ERROR`): a synthetic exception named after the status.
pub fn status_event(status: u16, method: &str, route: Option<&str>) -> Event {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Server Error");
    let ty: String = reason.split_whitespace().collect();
    let mut mechanism = Mechanism::new("http", false);
    mechanism.synthetic = Some(true);
    let mut event = Event::new(Level::Error);
    event.exception = Values {
        values: vec![Exception {
            ty,
            value: Some(format!(
                "{} {} responded {status} {reason}",
                method,
                route.unwrap_or(UNMATCHED)
            )),
            module: None,
            stacktrace: None,
            mechanism: Some(mechanism),
        }],
    };
    event
        .tags
        .insert("http.status_code".into(), status.to_string());
    event
}

/// The parts of a request that become Sentry's request context.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// `GET`, `POST` ...
    pub method: &'a str,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// The `Host` (or `:authority`), if known.
    pub host: Option<&'a str>,
    /// The path, without the query.
    pub path: &'a str,
    /// The raw query string, if any.
    pub query: Option<&'a str>,
    /// `HTTP/1.1`, `HTTP/2.0` ...
    pub version: &'a str,
    /// The client's address, as [`HttpOptions::client_ip`] decided.
    pub client_ip: Option<IpAddr>,
    /// The request id.
    pub request_id: Option<&'a str>,
}

/// Builds Sentry's request context from a request's parts and headers. Header names
/// are lowercased; repeated headers are joined with `, `; values that are not UTF-8
/// are kept lossily. Secret values are filtered later, on the worker.
pub fn build_request<'h>(
    parts: &RequestParts<'_>,
    headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
) -> Request {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies = None;
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        let value = String::from_utf8_lossy(value);
        if name == "cookie" {
            cookies = Some(value.clone().into_owned());
        }
        map.entry(name)
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    let host = parts
        .host
        .or_else(|| map.get("host").map(String::as_str))
        .unwrap_or("localhost");
    let query = parts.query.filter(|q| !q.is_empty());
    let pieces = [parts.scheme, "://", host, parts.path];
    let len = pieces.iter().map(|p| p.len()).sum::<usize>() + query.map_or(0, |q| q.len() + 1);
    let mut url = String::with_capacity(len);
    for piece in pieces {
        url.push_str(piece);
    }
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    let mut env = BTreeMap::new();
    if let Some(ip) = parts.client_ip {
        env.insert("REMOTE_ADDR".to_owned(), ip.to_string());
    }
    env.insert("HTTP_VERSION".to_owned(), parts.version.to_owned());
    if let Some(id) = parts.request_id {
        env.insert("REQUEST_ID".to_owned(), id.to_owned());
    }
    Request {
        url: Some(url),
        method: Some(parts.method.to_owned()),
        data: None,
        query_string: query.map(str::to_owned),
        cookies,
        headers: map,
        env,
    }
}

/// The name of an HTTP version as Sentry shows it.
pub fn version_name(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_11 => "HTTP/1.1",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP",
    }
}

/// Fills the `browser`, `os` and `device` contexts from the request's `User-Agent`,
/// where they are not set already. Runs on the worker, only for recorded requests.
pub(crate) fn user_agent_contexts(request: &Request, contexts: &mut BTreeMap<String, Value>) {
    if contexts.contains_key("browser") {
        return;
    }
    let Some(ua) = request.headers.get("user-agent") else {
        return;
    };
    // A service sees the same few user agents over and over: parse each once. The
    // cache lives on the worker thread, bounded by clearing it when full.
    thread_local! {
        static PARSED: std::cell::RefCell<std::collections::HashMap<String, Vec<(&'static str, Value)>>> =
            std::cell::RefCell::new(std::collections::HashMap::new());
    }
    const CACHED: usize = 512;
    PARSED.with(|cache| {
        let mut cache = cache.borrow_mut();
        if !cache.contains_key(ua.as_str()) {
            if cache.len() >= CACHED {
                cache.clear();
            }
            cache.insert(ua.clone(), parse_user_agent(ua));
        }
        for (name, value) in &cache[ua.as_str()] {
            contexts.insert((*name).to_owned(), value.clone());
        }
    });
}

fn parse_user_agent(ua: &str) -> Vec<(&'static str, Value)> {
    let Some(parsed) = woothee::parser::Parser::new().parse(ua) else {
        return Vec::new();
    };
    let known = |s: &str| !s.is_empty() && s != woothee::woothee::VALUE_UNKNOWN;
    let mut out = Vec::new();
    if known(parsed.name) {
        out.push((
            "browser",
            serde_json::json!({"type": "browser", "name": parsed.name, "version": parsed.version}),
        ));
    }
    if known(parsed.os) {
        out.push((
            "os",
            serde_json::json!({"type": "os", "name": parsed.os, "version": parsed.os_version}),
        ));
    }
    if known(parsed.category) {
        out.push((
            "device",
            serde_json::json!({"type": "device", "family": parsed.category}),
        ));
    }
    out
}
