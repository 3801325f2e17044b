//! What the tower layer and the actix middleware share: the rules about HTTP, written
//! once. The adapters only translate their framework's types into these calls.
//!
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
//! let http = HttpOptions::new().trust_proxy("10.0.0.0/8".parse::<backstop_core::IpNet>().unwrap());
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

use crate::client::Client;
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
/// use backstop_core::{PagePolicy, PageRule};
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
    capture: Vec<RangeInclusive<u16>>,
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

    /// Whether a response with this status is recorded as an error event: in the
    /// capture set and not ignored by the client's `ignore_status`.
    pub fn captures(&self, client: &Client, status: u16) -> bool {
        self.capture.iter().any(|r| r.contains(&status)) && !client.is_status_ignored(status)
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

    /// The client's address: the peer's, unless the peer is a trusted proxy, in which
    /// case the forwarding headers are walked from the nearest hop outwards, skipping
    /// trusted proxies; the first untrusted address is the client. Malformed headers
    /// are ignored.
    pub fn client_ip(
        &self,
        peer: Option<IpAddr>,
        x_forwarded_for: Option<&[u8]>,
        forwarded: Option<&[u8]>,
    ) -> Option<IpAddr> {
        self.client_ip_with(peer, || (x_forwarded_for, forwarded))
    }

    /// [`client_ip`](Self::client_ip), reading the `X-Forwarded-For` and `Forwarded`
    /// values only when the peer is a trusted proxy: with none configured (the
    /// default), a request costs no header lookup for them.
    pub fn client_ip_with<'a>(
        &self,
        peer: Option<IpAddr>,
        forwarding: impl FnOnce() -> (Option<&'a [u8]>, Option<&'a [u8]>),
    ) -> Option<IpAddr> {
        let peer = peer?;
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let (x_forwarded_for, forwarded) = forwarding();
        let hops: Vec<IpAddr> = match (forwarded, x_forwarded_for) {
            (Some(fwd), _) => parse_forwarded(fwd),
            (None, Some(xff)) => parse_x_forwarded_for(xff),
            (None, None) => Vec::new(),
        };
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            client = hop;
            if !self.is_trusted(hop) {
                break;
            }
        }
        Some(client)
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
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
    /// Each byte's two hex digits, so a byte is one lookup.
    const PAIRS: [[u8; 2]; 256] = {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut pairs = [[0; 2]; 256];
        let mut i = 0;
        while i < 256 {
            pairs[i] = [HEX[i >> 4], HEX[i & 0xf]];
            i += 1;
        }
        pairs
    };
    let random = [fastrand::u64(..), fastrand::u64(..)];
    let mut out = [0u8; 32];
    for (digits, byte) in out
        .chunks_exact_mut(2)
        .zip(random.iter().flat_map(|bits| bits.to_le_bytes()))
    {
        digits.copy_from_slice(&PAIRS[byte as usize]);
    }
    out
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

fn parse_x_forwarded_for(value: &[u8]) -> Vec<IpAddr> {
    let Ok(text) = std::str::from_utf8(value) else {
        return Vec::new();
    };
    text.split(',')
        .filter_map(|hop| parse_ip(hop.trim()))
        .collect()
}

/// RFC 7239: `Forwarded: for=192.0.2.60;proto=http, for="[2001:db8::1]:4711"`.
fn parse_forwarded(value: &[u8]) -> Vec<IpAddr> {
    let Ok(text) = std::str::from_utf8(value) else {
        return Vec::new();
    };
    text.split(',')
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                key.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| parse_ip(value.trim().trim_matches('"')))
                    .flatten()
            })
        })
        .collect()
}

/// An address, with or without a port (`192.0.2.1:80`, `[2001:db8::1]:4711`).
fn parse_ip(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    text.rsplit_once(':')
        .and_then(|(host, _)| host.parse().ok())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_flat_request_keeps_every_header_byte_for_byte() {
        let mut headers = http::HeaderMap::new();
        headers.append("accept", "text/html".parse().unwrap());
        headers.append("x-many", "one".parse().unwrap());
        headers.append("x-many", "two".parse().unwrap());
        // Not UTF-8, empty, and large values survive as bytes.
        headers.append(
            "x-binary",
            http::HeaderValue::from_bytes(&[0xff, 0xfe, b'a']).unwrap(),
        );
        headers.append("x-empty", http::HeaderValue::from_static(""));
        let big = "v".repeat(100_000);
        headers.append("x-big", big.parse().unwrap());
        let uri: http::Uri = "https://shop.example:8443/cart/%E2%82%AC?q=a%20b&x"
            .parse()
            .unwrap();
        let flat = FlatRequest::from_http(&uri, b"id-1", &headers);
        assert_eq!(
            flat.uri(),
            "https://shop.example:8443/cart/%E2%82%AC?q=a%20b&x"
        );
        assert_eq!(flat.request_id(), b"id-1");
        let ours: Vec<(&str, &[u8])> = flat.headers().collect();
        let theirs: Vec<(&str, &[u8])> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .collect();
        assert_eq!(ours, theirs);
        assert_eq!(flat.header("X-Many"), Some(&b"one"[..]));
        assert_eq!(flat.header("x-missing"), None);

        // An id set afterwards (the incoming one, found while copying) replaces it and
        // leaves the rest as it was.
        let mut flat = flat;
        flat.set_request_id(b"incoming-7");
        assert_eq!(flat.request_id(), b"incoming-7");
        assert_eq!(flat.headers().collect::<Vec<_>>(), theirs);
        assert_eq!(
            flat.uri(),
            "https://shop.example:8443/cart/%E2%82%AC?q=a%20b&x"
        );
        flat.set_request_id(b"");
        assert_eq!(flat.request_id(), b"");
        assert_eq!(flat.headers().count(), theirs.len());

        // Origin-form URIs (what HTTP/1 servers see) are kept as they came.
        let flat = FlatRequest::from_http(&"/a?b=c".parse().unwrap(), b"", &http::HeaderMap::new());
        assert_eq!(flat.uri(), "/a?b=c");
        assert_eq!(flat.headers().count(), 0);
    }

    #[test]
    fn forwarding_headers_are_believed_only_from_trusted_proxies() {
        let http = HttpOptions::new()
            .trust_proxy("10.0.0.0/8".parse::<IpNet>().unwrap())
            .trust_proxy(ip("192.0.2.7"));
        let xff = Some(b"203.0.113.5, 10.1.1.1".as_slice());
        // An untrusted peer's claims are ignored.
        assert_eq!(
            http.client_ip(Some(ip("198.51.100.9")), xff, None),
            Some(ip("198.51.100.9"))
        );
        // A trusted peer: walk right to left past trusted hops.
        assert_eq!(
            http.client_ip(Some(ip("10.0.0.2")), xff, None),
            Some(ip("203.0.113.5"))
        );
        // A spoofed left-most entry does not win over the first untrusted hop.
        let spoofed = Some(b"1.2.3.4, 203.0.113.5, 10.1.1.1".as_slice());
        assert_eq!(
            http.client_ip(Some(ip("10.0.0.2")), spoofed, None),
            Some(ip("203.0.113.5"))
        );
        // RFC 7239, with ports and brackets.
        let fwd = Some(br#"for="[2001:db8::1]:4711";proto=https, for=10.9.9.9"#.as_slice());
        assert_eq!(
            http.client_ip(Some(ip("192.0.2.7")), None, fwd),
            Some(ip("2001:db8::1"))
        );
        // Garbage is ignored; the peer stands.
        assert_eq!(
            http.client_ip(
                Some(ip("10.0.0.2")),
                Some(b"\xff, nonsense".as_slice()),
                None
            ),
            Some(ip("10.0.0.2"))
        );
        // IPv4-mapped IPv6 peers match IPv4 networks.
        assert_eq!(
            http.client_ip(Some(ip("::ffff:10.0.0.2")), xff, None),
            Some(ip("203.0.113.5"))
        );
        assert_eq!(http.client_ip(None, xff, None), None);
    }

    #[test]
    fn request_ids() {
        assert!(is_valid_request_id(b"abc-123"));
        assert!(is_valid_request_id(b"trace:abc/1+2=3"));
        assert!(!is_valid_request_id(b""));
        assert!(!is_valid_request_id(b"has space"));
        assert!(!is_valid_request_id(b"\x00evil"));
        assert!(!is_valid_request_id(b"<script>"));
        assert!(!is_valid_request_id(&[b'a'; 200]));
        let id = new_request_id();
        assert!(is_valid_request_id(&id), "a new id is itself valid");
        assert!(
            id.iter()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(new_request_id(), new_request_id());
        let ids: Vec<_> = (0..300).map(|_| new_request_id_bytes()).collect();
        assert!(
            ids.iter()
                .all(|id| id.len() == 32 && is_valid_request_id(id))
        );
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(
            distinct.len(),
            ids.len(),
            "ids from one block and across blocks differ"
        );
    }

    #[test]
    fn page_decisions() {
        let http = HttpOptions::new();
        let replace = |detail| PageDecision::Replace {
            detail_from_body: detail,
        };
        assert_eq!(http.page_decision(200, None, Some(0)), PageDecision::Keep);
        assert_eq!(http.page_decision(404, None, Some(0)), replace(false));
        assert_eq!(
            http.page_decision(405, None, None),
            PageDecision::Keep,
            "unknown body, no type"
        );
        assert_eq!(
            http.page_decision(422, Some(b"text/plain; charset=utf-8"), Some(30)),
            replace(true)
        );
        assert_eq!(
            http.page_decision(500, Some(b"text/html"), Some(30)),
            PageDecision::Keep
        );
        let always = HttpOptions::new().page_policy(PagePolicy::always());
        assert_eq!(
            always.page_decision(500, Some(b"application/json"), Some(30)),
            replace(false)
        );
        let never = HttpOptions::new().page_policy(PagePolicy::never());
        assert_eq!(never.page_decision(404, None, Some(0)), PageDecision::Keep);
        let mixed =
            HttpOptions::new().page_policy(PagePolicy::default().status(404, PageRule::Always));
        assert_eq!(
            mixed.page_decision(404, Some(b"application/json"), Some(2)),
            replace(false)
        );
        assert_eq!(
            mixed.page_decision(500, Some(b"application/json"), Some(2)),
            PageDecision::Keep
        );
    }

    #[test]
    fn body_capture_only_for_json_and_forms() {
        let off = HttpOptions::new();
        assert_eq!(off.body_limit_for(Some(b"application/json")), None);
        let on = HttpOptions::new().capture_bodies(1024);
        assert_eq!(
            on.body_limit_for(Some(b"application/json; charset=utf-8")),
            Some(1024)
        );
        assert_eq!(
            on.body_limit_for(Some(b"application/problem+json")),
            Some(1024)
        );
        assert_eq!(
            on.body_limit_for(Some(b"application/x-www-form-urlencoded")),
            Some(1024)
        );
        assert_eq!(
            on.body_limit_for(Some(b"multipart/form-data; boundary=x")),
            None
        );
        assert_eq!(on.body_limit_for(None), None);
    }

    #[test]
    fn builds_the_request_context() {
        let parts = RequestParts {
            method: "GET",
            scheme: "http",
            host: None,
            path: "/users/7",
            query: Some("tab=posts"),
            version: "HTTP/1.1",
            client_ip: Some(ip("203.0.113.5")),
            request_id: Some("r1"),
        };
        let headers: Vec<(&str, &[u8])> = vec![
            ("Host", b"shop.test"),
            ("Accept", b"text/html"),
            ("Accept", b"*/*"),
            ("Cookie", b"a=1"),
            ("X-Odd", b"\xffok"),
        ];
        let request = build_request(&parts, headers);
        assert_eq!(
            request.url.as_deref(),
            Some("http://shop.test/users/7?tab=posts")
        );
        assert_eq!(request.headers["accept"], "text/html, */*");
        assert_eq!(request.headers["x-odd"], "\u{fffd}ok");
        assert_eq!(request.cookies.as_deref(), Some("a=1"));
        assert_eq!(request.env["REMOTE_ADDR"], "203.0.113.5");
        assert_eq!(request.env["REQUEST_ID"], "r1");
        assert_eq!(request.query_string.as_deref(), Some("tab=posts"));
    }

    #[test]
    fn request_facts_build_every_uri_form_as_the_uri_parser_reads_it() {
        for given in [
            "/users/7?tab=posts",
            "/users/7",
            "/search?",
            "/a?b=c?d",
            "/",
            "https://shop.example:8443/cart?step=2",
            "http://shop.example",
            "*",
        ] {
            let flat = FlatRequest::new(&[given], b"id-9", || {
                [("host", &b"from-header.test"[..])].into_iter()
            });
            let facts = RequestFacts {
                method: "GET",
                scheme: "https",
                version: "HTTP/1.1",
                client_ip: None,
                flat: flat.view(),
                body: None,
            };
            let uri: http::Uri = given.parse().unwrap();
            let expected = build_request(
                &RequestParts {
                    method: "GET",
                    scheme: uri.scheme_str().unwrap_or("https"),
                    host: uri.authority().map(|a| a.as_str()),
                    path: uri.path(),
                    query: uri.query(),
                    version: "HTTP/1.1",
                    client_ip: None,
                    request_id: Some("id-9"),
                },
                flat.headers(),
            );
            assert_eq!(facts.build(), expected, "{given}");
        }
        let flat = FlatRequest::new(&["/users/7?tab=posts"], b"", std::iter::empty);
        let built = RequestFacts {
            method: "GET",
            scheme: "http",
            version: "HTTP/1.1",
            client_ip: None,
            flat: flat.view(),
            body: None,
        }
        .build();
        assert_eq!(
            built.url.as_deref(),
            Some("http://localhost/users/7?tab=posts")
        );
        assert_eq!(built.query_string.as_deref(), Some("tab=posts"));
    }

    #[test]
    fn a_requests_page_path_leaves_out_scheme_and_host() {
        for (given, path) in [
            ("/cart?step=2", "/cart?step=2"),
            ("https://shop.example:8443/cart?step=2", "/cart?step=2"),
            ("http://shop.example", "/"),
        ] {
            let request = HttpRequest {
                method: http::Method::GET,
                scheme: "https",
                version: "HTTP/1.1",
                client_ip: None,
                flat: FlatRequest::new(&[given], b"", std::iter::empty),
                body: None,
            };
            assert_eq!(request.path_and_query(), path, "{given}");
        }
    }

    #[test]
    fn response_events() {
        let event = status_event(503, "GET", Some("/health"));
        let exc = &event.exception.values[0];
        assert_eq!(exc.ty, "ServiceUnavailable");
        assert_eq!(
            exc.value.as_deref(),
            Some("GET /health responded 503 Service Unavailable")
        );
        let mechanism = exc.mechanism.as_ref().unwrap();
        assert_eq!(
            (mechanism.handled, mechanism.synthetic),
            (Some(false), Some(true))
        );
        assert_eq!(event.tags["http.status_code"], "503");

        let err = "x".parse::<u8>().unwrap_err();
        let event = error_response_event(&err, 500);
        assert_eq!(event.exception.values[0].ty, "ParseIntError");
        assert_eq!(
            event.exception.values[0].mechanism.as_ref().unwrap().ty,
            "http"
        );
    }

    #[test]
    fn user_agents_become_contexts() {
        let mut request = Request::default();
        request.headers.insert(
            "user-agent".into(),
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36".into(),
        );
        let mut contexts = BTreeMap::new();
        user_agent_contexts(&request, &mut contexts);
        assert_eq!(contexts["browser"]["name"], "Chrome");
        assert_eq!(contexts["os"]["name"], "Windows 10");
        assert_eq!(contexts["device"]["family"], "pc");
    }
}

// ---------------------------------------------------------------------------------------
// Request body capture, shared by the adapters (added with backstop-actix).

/// The body of one request, copied as the handler reads it, for the request context.
///
/// The adapter wraps the request body so every chunk the handler reads is also
/// [`push`](Self::push)ed here. The first `limit` bytes are kept; a JSON document cut
/// at the limit is still scrubbed (secret keys' values are filtered in its text).
/// Nothing is read that the handler does not read, so the handler gets its body intact
/// and unbuffered.
///
/// ```
/// use backstop_core::adapter::BodyCapture;
///
/// let capture = BodyCapture::new(16);
/// assert_eq!(capture.text(), None);
/// capture.push(b"{\"a\":");
/// capture.push(b"1}");
/// assert_eq!(capture.text().as_deref(), Some("{\"a\":1}"));
///
/// let big = BodyCapture::new(4);
/// big.push(b"{\"password\":\"x\"}");
/// assert_eq!(big.text().as_deref(), Some("{\"pa"), "cut at the limit");
/// ```
#[derive(Debug)]
pub struct BodyCapture {
    limit: usize,
    // One lock per request, taken once per chunk: never shared across requests.
    bytes: std::sync::Mutex<Vec<u8>>,
}

impl BodyCapture {
    /// Captures up to `limit` bytes (from [`HttpOptions::body_limit_for`]).
    pub fn new(limit: usize) -> Self {
        BodyCapture {
            limit,
            bytes: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The most bytes it keeps.
    pub fn limit(&self) -> usize {
        self.limit
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.bytes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Copies a chunk the handler read, up to the limit.
    pub fn push(&self, chunk: &[u8]) {
        let mut bytes = self.lock();
        let room = self.limit.saturating_sub(bytes.len());
        bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }

    /// What was captured, as text (non-UTF-8 bytes replaced), if anything.
    pub fn text(&self) -> Option<String> {
        let bytes = self.lock();
        (!bytes.is_empty()).then(|| String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// What the adapters read of a request's headers at its start, found while
/// [`FlatRequest::at_start`] copies them. Header names are lowercase in both `http`
/// crates, as the comparisons expect.
#[derive(Debug, Clone, Copy, Default)]
pub struct StartHeaders<'h> {
    traceparent: Option<&'h [u8]>,
    sentry_trace: Option<&'h [u8]>,
    request_id: Option<&'h [u8]>,
}

impl<'h> StartHeaders<'h> {
    /// The caller's trace, from `traceparent` or else `sentry-trace`.
    pub fn trace(&self) -> Option<crate::TraceParent> {
        crate::TraceParent::from_values(self.traceparent, self.sentry_trace)
    }

    /// The incoming request id, when it is sane to reuse ([`is_valid_request_id`]);
    /// otherwise the adapter makes one ([`new_request_id_bytes`]).
    pub fn request_id(&self) -> Option<&'h [u8]> {
        self.request_id.filter(|id| is_valid_request_id(id))
    }
}

/// A request's plain facts, borrowed from what an adapter copied at its start: all
/// the worker needs for the request context. Both adapters build through
/// [`RequestFacts::build`]; a transaction carries a copy of them in its batch (see
/// [`BuildRequest::facts`](crate::BuildRequest::facts)).
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// `GET`, `POST` ...
    pub method: &'a str,
    /// The scheme when the URI was received without one: `http` or `https`.
    pub scheme: &'static str,
    /// `HTTP/1.1`, `HTTP/2.0` ...
    pub version: &'static str,
    /// The client's address, as [`HttpOptions::client_ip`] decided.
    pub client_ip: Option<IpAddr>,
    /// The URI, the request id and the headers.
    pub flat: FlatView<'a>,
    /// The captured body, when body capture is on.
    pub body: Option<&'a std::sync::Arc<BodyCapture>>,
}

impl RequestFacts<'_> {
    /// The bytes these facts hold on the heap: the copied request and the most a
    /// captured body keeps.
    pub fn heap_bytes(&self) -> usize {
        self.flat.buf.len() + self.body.map_or(0, |body| body.limit())
    }

    /// Sentry's request context (scrubbing happens later, on the worker).
    pub fn build(&self) -> Request {
        let uri = self.flat.uri();
        let parsed;
        // The origin form (`/path?query`), which servers nearly always get, splits at
        // the `?`; other forms go through `Uri`'s parser.
        let (scheme, host, path, query) = match uri.strip_prefix('/') {
            Some(_) => {
                let (path, query) = match uri.split_once('?') {
                    Some((path, query)) => (path, Some(query)),
                    None => (uri, None),
                };
                (self.scheme, None, path, query)
            }
            None => {
                parsed = uri.parse::<http::Uri>().unwrap_or_default();
                (
                    parsed.scheme_str().unwrap_or(self.scheme),
                    parsed.authority().map(|a| a.as_str()),
                    parsed.path(),
                    parsed.query(),
                )
            }
        };
        let mut request = build_request(
            &RequestParts {
                method: self.method,
                scheme,
                host,
                path,
                query,
                version: self.version,
                client_ip: self.client_ip,
                request_id: std::str::from_utf8(self.flat.request_id()).ok(),
            },
            self.flat.headers(),
        );
        request.data = self.body.and_then(|body| body.text());
        request
    }
}

/// A request's facts, owned: what an adapter copies at the request's start and hands
/// to [`ScopeBuilder::http_request`](crate::scope::ScopeBuilder::http_request). The
/// scope keeps it inline (no allocation of its own) for the response side to read,
/// and a transaction carries a copy of it to the worker.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// `GET`, `POST` ...
    pub method: http::Method,
    /// The scheme when the URI was received without one: `http` or `https`.
    pub scheme: &'static str,
    /// `HTTP/1.1`, `HTTP/2.0` ...
    pub version: &'static str,
    /// The client's address, as [`HttpOptions::client_ip`] decided.
    pub client_ip: Option<IpAddr>,
    /// The URI, the request id and the headers.
    pub flat: FlatRequest,
    /// The captured body, when body capture is on.
    pub body: Option<std::sync::Arc<BodyCapture>>,
}

impl HttpRequest {
    /// The facts, borrowed.
    pub fn facts(&self) -> RequestFacts<'_> {
        RequestFacts {
            method: self.method.as_str(),
            scheme: self.scheme,
            version: self.version,
            client_ip: self.client_ip,
            flat: self.flat.view(),
            body: self.body.as_ref(),
        }
    }

    /// The path and query as asked for, without a scheme or host (for an error page).
    pub fn path_and_query(&self) -> String {
        let uri = self.flat.uri();
        if uri.starts_with('/') {
            return uri.to_owned();
        }
        let uri: http::Uri = uri.parse().unwrap_or_default();
        uri.path_and_query()
            .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned())
    }
}

impl crate::scope::BuildRequest for HttpRequest {
    fn build_request(&self) -> Request {
        self.facts().build()
    }

    fn facts(&self) -> Option<RequestFacts<'_>> {
        Some(HttpRequest::facts(self))
    }
}

// ---------------------------------------------------------------------------------------
// The request as the worker sees it

/// A request's URI, request id and headers copied into one buffer, for the worker to
/// build the request context from.
///
/// An adapter keeps the request's details until a record needs them, and the record
/// is often built on the worker thread, which then frees them. Freed there, each of a
/// cloned `HeaderMap`'s allocations (and a URI's) costs the allocator a cross-thread
/// free; one buffer costs one.
///
/// ```
/// use backstop_core::adapter::FlatRequest;
///
/// let headers = [("accept", &b"text/html"[..]), ("x-tenant", &b"acme"[..])];
/// let flat = FlatRequest::new(
///     &["https", "://", "shop.example", "/cart?step=2"],
///     b"4bf92f3577b34da6",
///     || headers.iter().copied(),
/// );
/// assert_eq!(flat.uri(), "https://shop.example/cart?step=2");
/// assert_eq!(flat.request_id(), b"4bf92f3577b34da6");
/// assert_eq!(flat.header("accept"), Some(&b"text/html"[..]));
/// assert_eq!(flat.headers().count(), 2);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct FlatRequest {
    /// The URI, then each header as a 2-byte name length, the name, a 4-byte value
    /// length and the value, then the request id (last, so that an adapter can find
    /// the incoming one in the same pass that copies the headers). Kept as built:
    /// shrinking it to fit would cost a copy.
    buf: Vec<u8>,
    uri_len: u32,
    id_len: u32,
}

impl FlatRequest {
    /// The bytes a header is given in the buffer before it is counted: name, value
    /// and their lengths.
    const TYPICAL_HEADER: usize = 48;

    /// Copies the URI (given in pieces written one after the other, so an adapter need
    /// not format it: `["https", "://", host, path_and_query]`), the request id and the
    /// headers (name, value) into one buffer, in one pass over the headers. Names
    /// longer than 64 KiB and values or URIs longer than 4 GiB are impossible in HTTP
    /// and are cut.
    pub fn new<'h, I>(uri: &[&str], request_id: &[u8], headers: impl FnOnce() -> I) -> Self
    where
        I: Iterator<Item = (&'h str, &'h [u8])>,
    {
        let uri_len: usize = uri.iter().map(|piece| piece.len()).sum();
        let uri_len = uri_len.min(u32::MAX as usize);
        let request_id = clamp(request_id, u32::MAX as usize);
        let headers = headers();
        // Room for headers of a typical size; a request with longer ones grows it.
        let room = headers.size_hint().0.saturating_mul(Self::TYPICAL_HEADER);
        // The id is usually set afterwards (see `set_request_id`): room for a new one.
        let id_room = request_id.len().max(32);
        let mut buf = Vec::with_capacity(uri_len + room + id_room);
        for piece in uri {
            let room = uri_len - buf.len();
            buf.extend_from_slice(clamp(piece.as_bytes(), room));
        }
        let uri_len = buf.len();
        for (name, value) in headers {
            let name = clamp(name.as_bytes(), u16::MAX as usize);
            let value = clamp(value, u32::MAX as usize);
            buf.reserve(6 + name.len() + value.len());
            buf.extend_from_slice(&(name.len() as u16).to_le_bytes());
            buf.extend_from_slice(name);
            buf.extend_from_slice(&(value.len() as u32).to_le_bytes());
            buf.extend_from_slice(value);
        }
        buf.extend_from_slice(request_id);
        FlatRequest {
            buf,
            uri_len: uri_len as u32,
            id_len: request_id.len() as u32,
        }
    }

    /// The same from `http`'s types (the URI as received: absolute, or the path and
    /// query).
    pub fn from_http(uri: &http::Uri, request_id: &[u8], headers: &http::HeaderMap) -> Self {
        FlatRequest::from_uri_parts(
            uri.scheme_str(),
            uri.authority().map(|a| a.as_str()),
            uri.path_and_query().map(|p| p.as_str()),
            request_id,
            || headers.iter().map(|(k, v)| (k.as_str(), v.as_bytes())),
        )
    }

    /// [`new`](Self::new) from a URI's parts as received (for a server whose `Uri`
    /// type is not `http`'s 1.x): scheme and authority when it was absolute, and the
    /// path and query (`/` when there are none).
    pub fn from_uri_parts<'h, I>(
        scheme: Option<&str>,
        authority: Option<&str>,
        path_and_query: Option<&str>,
        request_id: &[u8],
        headers: impl FnOnce() -> I,
    ) -> Self
    where
        I: Iterator<Item = (&'h str, &'h [u8])>,
    {
        let path = path_and_query.unwrap_or("/");
        let pieces = match (scheme, authority) {
            (Some(scheme), Some(authority)) => [scheme, "://", authority, path],
            _ => ["", "", "", path],
        };
        FlatRequest::new(&pieces, request_id, headers)
    }

    /// [`from_uri_parts`](Self::from_uri_parts) at a request's start, with no request
    /// id yet: the same pass over the headers finds what the adapter reads of them
    /// (one lookup each would hash each name). Set the id with
    /// [`set_request_id`](Self::set_request_id) once it is decided.
    ///
    /// ```
    /// use backstop_core::adapter::FlatRequest;
    ///
    /// let headers = [("accept", b"*/*".as_slice()), ("x-request-id", b"abc-1".as_slice())];
    /// let (mut flat, found) =
    ///     FlatRequest::at_start(None, None, Some("/a"), "x-request-id", || headers.iter().copied());
    /// assert_eq!(found.request_id(), Some(&b"abc-1"[..]));
    /// assert!(found.trace().is_none());
    /// flat.set_request_id(b"abc-1");
    /// assert_eq!(flat.headers().count(), 2);
    /// ```
    pub fn at_start<'h, I>(
        scheme: Option<&str>,
        authority: Option<&str>,
        path_and_query: Option<&str>,
        request_id_header: &str,
        headers: impl FnOnce() -> I,
    ) -> (Self, StartHeaders<'h>)
    where
        I: Iterator<Item = (&'h str, &'h [u8])>,
    {
        let mut found = StartHeaders::default();
        let flat = FlatRequest::from_uri_parts(scheme, authority, path_and_query, b"", || {
            headers().inspect(|&(name, value)| {
                let slot = if name == "traceparent" {
                    &mut found.traceparent
                } else if name == "sentry-trace" {
                    &mut found.sentry_trace
                } else if name == request_id_header {
                    &mut found.request_id
                } else {
                    return;
                };
                // The first of repeated values, as `HeaderMap::get` gives.
                slot.get_or_insert(value);
            })
        });
        (flat, found)
    }

    /// A borrowed view of the request, as [`RequestFacts`] carries it.
    pub fn view(&self) -> FlatView<'_> {
        FlatView {
            buf: &self.buf,
            uri_len: self.uri_len,
            id_len: self.id_len,
        }
    }

    /// The URI as given.
    pub fn uri(&self) -> &str {
        self.view().uri()
    }

    /// The request id.
    pub fn request_id(&self) -> &[u8] {
        self.view().request_id()
    }

    /// Replaces the request id: for an adapter that learns the incoming one while the
    /// headers are copied.
    pub fn set_request_id(&mut self, request_id: &[u8]) {
        let request_id = clamp(request_id, u32::MAX as usize);
        self.buf.truncate(self.buf.len() - self.id_len as usize);
        self.buf.extend_from_slice(request_id);
        self.id_len = request_id.len() as u32;
    }

    /// The headers, in order; a repeated header appears once per value.
    pub fn headers(&self) -> FlatHeaders<'_> {
        self.view().headers()
    }

    /// The first value of the header `name` (compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.view().header(name)
    }
}

/// A [`FlatRequest`]'s bytes, borrowed: from the request itself, or from the copy a
/// transaction carries to the worker.
#[derive(Debug, Clone, Copy)]
pub struct FlatView<'a> {
    buf: &'a [u8],
    uri_len: u32,
    id_len: u32,
}

impl<'a> FlatView<'a> {
    /// The bytes and the lengths that frame them, for a copy (see
    /// [`FlatView::from_raw`]).
    pub(crate) fn raw(&self) -> (&'a [u8], u32, u32) {
        (self.buf, self.uri_len, self.id_len)
    }

    /// A view of a copy of [`FlatView::raw`]'s bytes. Lengths that do not fit the
    /// bytes (which a copy never has) give an empty request rather than a panic.
    pub(crate) fn from_raw(buf: &'a [u8], uri_len: u32, id_len: u32) -> Self {
        let framed = (uri_len as usize)
            .checked_add(id_len as usize)
            .is_some_and(|n| n <= buf.len());
        match framed {
            true => FlatView {
                buf,
                uri_len,
                id_len,
            },
            false => FlatView {
                buf: &[],
                uri_len: 0,
                id_len: 0,
            },
        }
    }

    /// The URI as given.
    pub fn uri(&self) -> &'a str {
        // Written from a `&str`, cut (if ever) at a byte count that `clamp` keeps on a
        // character boundary.
        std::str::from_utf8(&self.buf[..self.uri_len as usize]).unwrap_or_default()
    }

    /// The request id.
    pub fn request_id(&self) -> &'a [u8] {
        &self.buf[self.buf.len() - self.id_len as usize..]
    }

    /// The headers, in order; a repeated header appears once per value.
    pub fn headers(&self) -> FlatHeaders<'a> {
        FlatHeaders {
            rest: &self.buf[self.uri_len as usize..self.buf.len() - self.id_len as usize],
        }
    }

    /// The first value of the header `name` (compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

impl std::fmt::Debug for FlatRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlatRequest")
            .field("uri", &self.uri())
            .field("headers", &self.headers().count())
            .finish_non_exhaustive()
    }
}

/// The headers of a [`FlatRequest`].
#[derive(Debug, Clone)]
pub struct FlatHeaders<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for FlatHeaders<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (name_len, rest) = self.rest.split_first_chunk::<2>()?;
        let name_len = u16::from_le_bytes(*name_len) as usize;
        let (name, rest) = rest.split_at_checked(name_len)?;
        let (value_len, rest) = rest.split_first_chunk::<4>()?;
        let value_len = u32::from_le_bytes(*value_len) as usize;
        let (value, rest) = rest.split_at_checked(value_len)?;
        self.rest = rest;
        Some((std::str::from_utf8(name).unwrap_or_default(), value))
    }
}

/// `bytes` cut to at most `max`, on a UTF-8 character boundary when it is text.
fn clamp(bytes: &[u8], max: usize) -> &[u8] {
    if bytes.len() <= max {
        return bytes;
    }
    let mut end = max;
    while end > 0 && (bytes[end] & 0b1100_0000) == 0b1000_0000 {
        end -= 1;
    }
    &bytes[..end]
}
