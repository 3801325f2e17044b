//! Outgoing HTTP calls as `http.client` spans, with trace propagation.
//!
//! The framework-neutral part of a client call, which the reqwest middleware
//! (`backstop_core::reqwest`, feature `reqwest`) and the tower layer
//! (`backstop_tower::OutgoingLayer`) wrap. A client of another kind calls it by hand:
//!
//! ```
//! # let backstop = backstop_core::init(backstop_core::Options::new()).unwrap();
//! let mut headers = http::HeaderMap::new();
//! let mut call = backstop_core::outgoing::start(&http::Method::GET, "https://api.example/rates?from=EUR");
//! call.inject(&mut headers); // traceparent and sentry-trace, inside a request
//! // ... send the request with `headers` ...
//! call.status(200).response_size(512);
//! drop(call); // the span ends here
//! ```
//!
//! Inside a request, a call:
//! - is a child span (op `http.client`) of the current span, when the request is
//!   sampled: described `GET https://api.example/rates`, with the query in its data
//!   (`http.query`, scrubbed on the worker by the same rules as request URLs), the
//!   status, the response size and a failed status on errors and 5xx;
//! - carries `traceparent` and `sentry-trace` naming that span as the parent, so the
//!   called service continues the trace; only to the propagation targets, when
//!   [`Options::trace_propagation_targets`](crate::Options::trace_propagation_targets)
//!   lists them;
//! - leaves a breadcrumb (method, URL, status), sampled or not.
//!
//! Outside any request (or a task bound to one with [`bind`](crate::bind)) a call
//! records nothing and adds no header.

use std::cell::RefCell;
use std::fmt;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};

use crate::performance::spans::{Guard, GuardRecord, MAX_FIELD, Open};
use crate::protocol::{SpanId, SpanStatus};
use crate::scope::intern::Text;
use crate::scope::spans::{CrumbRecord, Detail, HttpCall, Recorded};

/// The W3C trace header.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// Sentry's trace header.
const SENTRY_TRACE: HeaderName = HeaderName::from_static("sentry-trace");

/// `00-{trace id}-{span id}-0x`.
const TRACEPARENT_LEN: usize = 3 + 32 + 1 + 16 + 3;
/// `{trace id}-{span id}-x`.
const SENTRY_TRACE_LEN: usize = 32 + 1 + 16 + 2;

/// The longest method a call keeps, in bytes (extension methods can be any length).
const MAX_METHOD: usize = 32;

/// Starts an outgoing call to `url` (absolute, as the client sends it). The span ends
/// when the guard drops; see the [module docs](self).
pub fn start(method: &http::Method, url: &str) -> HttpClientSpan {
    HttpClientSpan(Guard::new(open(|| {
        HttpCall::compose(
            method,
            |text| text.push_str(url),
            |text| split_url(url, text),
        )
    })))
}

/// Like [`start`], for an `http::Uri` (what tower clients send). The URL text is only
/// built inside a request.
pub fn start_uri(method: &http::Method, uri: &http::Uri) -> HttpClientSpan {
    HttpClientSpan(Guard::new(open(|| {
        HttpCall::compose(
            method,
            |text| uri_as_given(uri, text),
            |text| split_uri(uri, text),
        )
    })))
}

/// Appends `uri` as it is written.
fn uri_as_given(uri: &http::Uri, text: &mut String) {
    if let Some(scheme) = uri.scheme_str() {
        text.push_str(scheme);
        text.push_str("://");
    }
    if let Some(authority) = uri.authority() {
        text.push_str(authority.as_str());
    }
    match uri.path_and_query() {
        Some(path) => text.push_str(path.as_str()),
        None => text.push_str(uri.path()),
    }
}

/// [`split_url`] for an `http::Uri`.
fn split_uri<'u>(uri: &'u http::Uri, text: &mut String) -> Option<&'u str> {
    use std::fmt::Write;
    let start = text.len();
    if let Some(scheme) = uri.scheme_str() {
        text.push_str(scheme);
        text.push_str("://");
    }
    if let Some(host) = uri.host() {
        text.push_str(host);
    }
    if let Some(port) = uri.port_u16() {
        let _ = write!(text, ":{port}");
    }
    text.push_str(uri.path());
    cut(text, start, MAX_FIELD);
    uri.query().filter(|q| !q.is_empty())
}

fn open(call: impl FnOnce() -> HttpCall) -> Option<Open<OpenCall>> {
    let (scope, parent) = crate::performance::tracing::current()?;
    let call = call();
    let sampled = scope.is_sampled();
    let propagate = scope.settings().propagates_to(call.url());
    Some(Open {
        record: OpenCall {
            span_id: if sampled {
                SpanId::new()
            } else {
                parent.unwrap_or_else(|| scope.span_id())
            },
            propagate,
            call,
        },
        scope,
        parent,
        start: crate::scope::spans::now(),
    })
}

/// Appends `url` without its credentials, query and fragment to `text` (the URL cut
/// to [`MAX_FIELD`] bytes); returns its query. `https://user:pass@host/path?q#frag` is
/// `https://host/path` and `Some("q")`: the credentials and fragment never leave the
/// request thread.
fn split_url<'u>(url: &'u str, text: &mut String) -> Option<&'u str> {
    let url = url.split_once('#').map_or(url, |(before, _)| before);
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, (!query.is_empty()).then_some(query)),
        None => (url, None),
    };
    let start = text.len();
    // The first `:` followed by `//` (a search for `':'` is a fast byte scan, where one
    // for `"://"` sets up a substring searcher on every call).
    let scheme_end = base
        .match_indices(':')
        .map(|(at, _)| at)
        .find(|&at| base[at..].starts_with("://"));
    match scheme_end.map(|at| (&base[..at], &base[at + 3..])) {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => {
                    text.push_str(scheme);
                    text.push_str("://");
                    text.push_str(&rest[at + 1..]);
                }
                None => text.push_str(base),
            }
        }
        None => text.push_str(base),
    }
    cut(text, start, MAX_FIELD);
    query
}

/// Cuts what was appended to `text` since `start` to `max` bytes, marking the cut with
/// `…` (as [`bounded`](crate::scope::intern::bounded) does).
fn cut(text: &mut String, start: usize, max: usize) {
    if text.len() - start <= max {
        return;
    }
    let mut end = start + max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push('…');
}

/// Slots in each thread's cache of calls' texts (a power of two).
const CALL_SLOTS: usize = 64;

/// A call's text as [`HttpCall::compose`] put it together, kept by the hash of the
/// text it was put together from.
#[derive(Clone, Copy)]
struct CachedCall {
    hash: u64,
    text: &'static str,
    method_end: u16,
    url_end: u16,
}

/// What a thread keeps for putting calls' texts together (one thread-local, borrowed
/// once per call).
struct Composer {
    /// Where a call's text is put together before it is looked up: no allocation
    /// per call.
    scratch: String,
    /// The calls made lately whose text is the method and URL as given (no
    /// credentials, fragment or empty query to drop, nothing to cut): a repeat is a
    /// hash and a compare, with no split and no lookup of the shared text.
    calls: [CachedCall; CALL_SLOTS],
}

thread_local! {
    static COMPOSER: RefCell<Composer> = const {
        RefCell::new(Composer {
            scratch: String::new(),
            calls: [CachedCall {
                hash: 0,
                text: "",
                method_end: 0,
                url_end: 0,
            }; CALL_SLOTS],
        })
    };
}

/// An outgoing call in progress; see [`start`].
#[must_use = "the span ends when the guard drops"]
pub struct HttpClientSpan(Guard<OpenCall>);

/// What an outgoing call's guard holds.
pub(crate) struct OpenCall {
    /// The call's span when the request is sampled; else the span it runs under (the
    /// parent the called service is told of).
    span_id: SpanId,
    propagate: bool,
    call: HttpCall,
}

impl GuardRecord for OpenCall {
    const NAME: &'static str = "HttpClientSpan";

    /// The span and the breadcrumb each get the compact record (its text shared);
    /// the breadcrumb is built from it only if something reads it.
    fn end(open: Open<Self>, took_ns: u64) {
        let Open {
            scope,
            parent,
            start,
            record: OpenCall { span_id, call, .. },
        } = open;
        let ended = start + Duration::from_nanos(took_ns);
        let span = scope.is_sampled().then(|| Recorded {
            span_id,
            parent,
            start,
            took_ns,
            status: Some(call.span_status()),
            detail: Detail::Http(call.clone()),
        });
        scope.record_with_breadcrumb(ended, CrumbRecord::Http(call), span);
    }
}

impl HttpCall {
    /// Puts the call's text together: the method, a space, the URL `url` appends
    /// (returning its query), then `?` and the query. `raw` appends the URL as given:
    /// when the text put together is the method, a space and that (the common case),
    /// the next call with the same method and URL finds it in this thread's cache.
    fn compose<'q>(
        method: &http::Method,
        raw: impl FnOnce(&mut String),
        url: impl FnOnce(&mut String) -> Option<&'q str>,
    ) -> HttpCall {
        COMPOSER.with(|composer| match composer.try_borrow_mut() {
            Ok(mut composer) => {
                let Composer { scratch, calls } = &mut *composer;
                Self::compose_cached(scratch, calls, method, raw, url)
            }
            Err(_) => Self::build(&mut String::new(), 0, method, url),
        })
    }

    fn compose_cached<'q>(
        text: &mut String,
        calls: &mut [CachedCall; CALL_SLOTS],
        method: &http::Method,
        raw: impl FnOnce(&mut String),
        url: impl FnOnce(&mut String) -> Option<&'q str>,
    ) -> HttpCall {
        text.clear();
        text.push_str(method.as_str());
        text.push(' ');
        raw(text);
        let given = text.len();
        let hash = xxhash_rust::xxh3::xxh3_64(text.as_bytes());
        let slot = hash as usize & (CALL_SLOTS - 1);
        let cached = calls[slot];
        if cached.hash == hash && cached.text == text.as_str() {
            return HttpCall::new(Text::Shared(cached.text), cached.method_end, cached.url_end);
        }
        // Put together after the text as given, then compared with it.
        let call = Self::build(text, given, method, url);
        if let Text::Shared(kept) = call.text
            && kept == &text[..given]
        {
            calls[slot] = CachedCall {
                hash,
                text: kept,
                method_end: call.method_end,
                url_end: call.url_end,
            };
        }
        call
    }

    /// Puts the call's text together after `start` in `text` (see
    /// [`compose`](Self::compose)).
    fn build<'q>(
        text: &mut String,
        start: usize,
        method: &http::Method,
        url: impl FnOnce(&mut String) -> Option<&'q str>,
    ) -> HttpCall {
        text.truncate(start);
        text.push_str(method.as_str());
        cut(text, start, MAX_METHOD);
        let method_end = text.len() - start;
        text.push(' ');
        let query = url(text);
        let url_end = text.len() - start;
        if let Some(query) = query {
            text.push('?');
            let at = text.len();
            text.push_str(query);
            cut(text, at, MAX_FIELD);
        }
        // Everything is cut already: the text is kept as it is.
        let kept = Text::new(&text[start..], usize::MAX);
        HttpCall::new(kept, method_end as u16, url_end as u16)
    }

    fn new(text: Text, method_end: u16, url_end: u16) -> HttpCall {
        HttpCall {
            text,
            method_end,
            url_end,
            status: None,
            response_size: None,
            failure: None,
        }
    }
}

impl HttpClientSpan {
    /// Whether the call is inside a request (it leaves a breadcrumb, and a span when
    /// the request is sampled).
    pub fn is_recording(&self) -> bool {
        self.0.is_recording()
    }

    /// The `traceparent` and `sentry-trace` values for the call, when it is inside a
    /// request and its URL is a propagation target.
    pub fn trace_headers(&self) -> Option<[(HeaderName, HeaderValue); 2]> {
        let open = self.0.open().filter(|open| open.record.propagate)?;
        let sampled = open.scope.is_sampled();
        // Both values are written into one buffer on the stack; each header value
        // copies its part into an allocation of its own (no count shared between
        // the two to update as they are made and dropped).
        let mut buf = [0u8; TRACEPARENT_LEN + SENTRY_TRACE_LEN];
        let ids = 3..TRACEPARENT_LEN - 3;
        buf[..3].copy_from_slice(b"00-");
        buf[3..35].copy_from_slice(&open.scope.trace_id().hex());
        buf[35] = b'-';
        buf[36..ids.end].copy_from_slice(&open.record.span_id.hex());
        buf[ids.end..TRACEPARENT_LEN].copy_from_slice(if sampled { b"-01" } else { b"-00" });
        buf.copy_within(ids.clone(), TRACEPARENT_LEN);
        buf[TRACEPARENT_LEN + ids.len()..].copy_from_slice(if sampled { b"-1" } else { b"-0" });
        let (traceparent, sentry_trace) = buf.split_at(TRACEPARENT_LEN);
        Some([
            (TRACEPARENT, HeaderValue::from_bytes(traceparent).ok()?),
            (SENTRY_TRACE, HeaderValue::from_bytes(sentry_trace).ok()?),
        ])
    }

    /// Adds the trace headers (see [`trace_headers`](Self::trace_headers)) to an
    /// outgoing request's headers. Headers the caller set already are left alone.
    pub fn inject(&self, headers: &mut http::HeaderMap) {
        if let Some(pairs) = self.trace_headers() {
            for (name, value) in pairs {
                if let http::header::Entry::Vacant(slot) = headers.entry(name) {
                    slot.insert(value);
                }
            }
        }
    }

    /// The response's status. A 5xx marks the span failed.
    pub fn status(&mut self, status: u16) -> &mut Self {
        self.0.set(|open| open.call.status = Some(status));
        self
    }

    /// The response body's size in bytes, where known.
    pub fn response_size(&mut self, bytes: u64) -> &mut Self {
        self.0.set(|open| open.call.response_size = Some(bytes));
        self
    }

    /// The call failed before a response came: a refused connection, a broken
    /// connection (`Unavailable`, `InternalError`) or a timeout (`DeadlineExceeded`).
    pub fn failed(&mut self, status: SpanStatus) -> &mut Self {
        self.0.set(|open| open.call.failure = Some(status));
        self
    }

    /// Ends the span now (the same as dropping it).
    pub fn finish(self) {}
}

impl fmt::Debug for HttpClientSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The span status of a call that got no response, from its error: a timeout is
/// `DeadlineExceeded`; a refused, reset or dropped connection is `Unavailable`;
/// anything else `InternalError`. The whole `source()` chain is looked at, so a
/// client's error wrapping an `io::Error` is read through.
pub fn failure_status(error: &(dyn std::error::Error + 'static)) -> SpanStatus {
    use std::io::ErrorKind;
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            match io.kind() {
                ErrorKind::TimedOut => return SpanStatus::DeadlineExceeded,
                ErrorKind::ConnectionRefused
                | ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::NotConnected
                | ErrorKind::BrokenPipe
                | ErrorKind::UnexpectedEof => return SpanStatus::Unavailable,
                _ => {}
            }
        }
        // Timeout layers (tower's `Elapsed`) say so only in words.
        let text = error.to_string().to_ascii_lowercase();
        if text.contains("timed out") || text.contains("timeout") || text.contains("elapsed") {
            return SpanStatus::DeadlineExceeded;
        }
        next = error.source();
    }
    SpanStatus::InternalError
}

/// The URL pattern calls are grouped by: the path's ids (numbers, UUIDs, long hex or
/// mixed letter-and-digit tokens) become `*`, the query is dropped. `GET
/// https://api.example/users/42?x=1` and `.../users/43` are both `GET
/// https://api.example/users/*`.
///
/// ```
/// use backstop_core::outgoing::normalize_url;
/// assert_eq!(
///     normalize_url("GET https://api.example/users/42/orders/5f1c9e2a7b?expand=1"),
///     "GET https://api.example/users/*/orders/*"
/// );
/// ```
pub fn normalize_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    // Keep the method and authority; only the path has ids.
    let path_start = match url.find("://") {
        Some(at) => url[at + 3..].find('/').map_or(url.len(), |p| at + 3 + p),
        None => url.find('/').unwrap_or(url.len()),
    };
    let (head, path) = url.split_at(path_start);
    let mut out = String::with_capacity(url.len());
    out.push_str(head);
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if is_id(segment) {
            out.push('*');
        } else {
            out.push_str(segment);
        }
    }
    out
}

/// Whether a path segment looks like an id rather than a name.
fn is_id(segment: &str) -> bool {
    if segment.is_empty() {
        return false;
    }
    let digits = segment.bytes().filter(u8::is_ascii_digit).count();
    let hex = segment.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    digits == segment.len()
        || (hex && segment.len() >= 8 && digits > 0)
        || (digits > 0 && segment.len() >= 16)
}

/// The stable hash of a normalised call, for fingerprints.
pub(crate) fn call_group(normalized: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(normalized.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_fragment_and_query_are_split_off() {
        let split = |url| {
            let call = HttpCall::compose(
                &http::Method::GET,
                |text| text.push_str(url),
                |text| split_url(url, text),
            );
            (
                call.method().to_owned(),
                call.url().to_owned(),
                call.query().map(str::to_owned),
                call.description().to_owned(),
            )
        };
        assert_eq!(
            split("https://ann:pw@api.example:8443/a/b?x=1&token=2#top"),
            (
                "GET".to_owned(),
                "https://api.example:8443/a/b".to_owned(),
                Some("x=1&token=2".to_owned()),
                "GET https://api.example:8443/a/b".to_owned(),
            )
        );
        assert_eq!(split("http://h/p?").2, None);
        assert_eq!(split("http://h/p?").1, "http://h/p");
        assert_eq!(split("http://h/a@b").1, "http://h/a@b");
        // No scheme: a port's `:` is not one, and the text stays as it is.
        assert_eq!(split("api.example:80/p?q").1, "api.example:80/p");
        // The first `://`, past other colons: the credentials after it still go.
        assert_eq!(split("x:1/y://ann:pw@h/z").1, "x:1/y://h/z");
    }

    #[test]
    fn repeats_are_the_same_as_first_calls() {
        let compose = |method: &http::Method, url: &str| {
            let call = HttpCall::compose(
                method,
                |text| text.push_str(url),
                |text| split_url(url, text),
            );
            (
                call.method().to_owned(),
                call.url().to_owned(),
                call.query().map(str::to_owned),
            )
        };
        let urls = [
            "http://repeat.example/a?x=1",
            "http://ann:pw@repeat.example/a?x=1",
            "http://repeat.example/a?x=1#top",
            "http://repeat.example/a?",
            "http://repeat.example/a",
        ];
        for method in [http::Method::GET, http::Method::POST] {
            for url in urls {
                let first = compose(&method, url);
                for _ in 0..3 {
                    assert_eq!(compose(&method, url), first, "{method} {url}");
                }
            }
        }
        // Credentials and fragments are dropped on every call, not only the first.
        let (_, url, query) = compose(&http::Method::GET, "http://ann:pw@repeat.example/a?x=1#top");
        assert_eq!(
            (url.as_str(), query.as_deref()),
            ("http://repeat.example/a", Some("x=1"))
        );
        // Only calls whose text is what was given are cached.
        let cached = |text: &str| {
            COMPOSER.with(|composer| composer.borrow().calls.iter().any(|c| c.text == text))
        };
        assert!(cached("GET http://repeat.example/a?x=1"));
        assert!(!COMPOSER.with(|composer| {
            composer
                .borrow()
                .calls
                .iter()
                .any(|c| c.text.contains("pw@"))
        }));
    }

    #[test]
    fn uris_repeat_the_same_as_first_calls() {
        let compose = |uri: &str| {
            let uri: http::Uri = uri.parse().unwrap();
            let call = HttpCall::compose(
                &http::Method::GET,
                |text| uri_as_given(&uri, text),
                |text| split_uri(&uri, text),
            );
            (call.url().to_owned(), call.query().map(str::to_owned))
        };
        for (uri, url, query) in [
            (
                "http://u.example:8080/a?b=1",
                "http://u.example:8080/a",
                Some("b=1"),
            ),
            ("http://ann:pw@u.example/a", "http://u.example/a", None),
            ("/p?q=1", "/p", Some("q=1")),
        ] {
            for _ in 0..3 {
                assert_eq!(
                    compose(uri),
                    (url.to_owned(), query.map(str::to_owned)),
                    "{uri}"
                );
            }
        }
        let first = compose("http://u.example");
        assert_eq!(compose("http://u.example"), first);
    }

    #[test]
    fn long_methods_urls_and_queries_are_cut() {
        let method = http::Method::from_bytes(&[b'X'; 100]).unwrap();
        let url = format!("http://h/{}", "p".repeat(3000));
        let query = "q".repeat(3000);
        let full = format!("{url}?{query}");
        let call = HttpCall::compose(
            &method,
            |text| text.push_str(&full),
            |text| split_url(&full, text),
        );
        assert_eq!(call.method().len(), MAX_METHOD + '…'.len_utf8());
        assert_eq!(call.url().len(), MAX_FIELD + '…'.len_utf8());
        assert!(call.url().starts_with("http://h/ppp"));
        assert_eq!(call.query().unwrap().len(), MAX_FIELD + '…'.len_utf8());
    }

    #[test]
    fn ids_are_normalised() {
        assert_eq!(
            normalize_url("GET http://127.0.0.1:3000/api/rates"),
            "GET http://127.0.0.1:3000/api/rates"
        );
        assert_eq!(
            normalize_url("GET http://h/users/550e8400-e29b-41d4-a716-446655440000/x?y"),
            "GET http://h/users/*/x"
        );
        assert_eq!(
            normalize_url("GET http://h/v2/items"),
            "GET http://h/v2/items"
        );
        assert_eq!(normalize_url(""), "");
    }
}
