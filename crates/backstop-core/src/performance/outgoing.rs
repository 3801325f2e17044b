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

use std::fmt;
use std::sync::Arc;

use http::header::{HeaderName, HeaderValue};

use crate::performance::intern::{Text, bounded};
use crate::performance::spans::{Detail, Instant, MAX_FIELD, Recorded};
use crate::protocol::{Breadcrumb, Level, SpanId, SpanStatus};
use crate::scope::RequestScope;

/// The W3C trace header.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// Sentry's trace header.
const SENTRY_TRACE: HeaderName = HeaderName::from_static("sentry-trace");

/// Starts an outgoing call to `url` (absolute, as the client sends it). The span ends
/// when the guard drops; see the [module docs](self).
pub fn start(method: &http::Method, url: &str) -> HttpClientSpan {
    HttpClientSpan {
        inner: open(method, || split_url(url)),
    }
}

/// Like [`start`], for an `http::Uri` (what tower clients send). The URL text is only
/// built inside a request.
pub fn start_uri(method: &http::Method, uri: &http::Uri) -> HttpClientSpan {
    HttpClientSpan {
        inner: open(method, || {
            let mut url = String::with_capacity(64);
            if let Some(scheme) = uri.scheme_str() {
                url.push_str(scheme);
                url.push_str("://");
            }
            if let Some(host) = uri.host() {
                url.push_str(host);
            }
            if let Some(port) = uri.port_u16() {
                url.push(':');
                url.push_str(&port.to_string());
            }
            url.push_str(uri.path());
            let query = uri
                .query()
                .filter(|q| !q.is_empty())
                .map(|q| bounded(q, MAX_FIELD));
            (Text::from(url), query)
        }),
    }
}

fn open(method: &http::Method, url: impl FnOnce() -> (Text, Option<String>)) -> Option<Box<Open>> {
    let (scope, parent) = crate::performance::tracing::current()?;
    let (url, query) = url();
    let sampled = scope.is_sampled();
    let propagate = scope.client().settings().propagates_to(&url);
    Some(Box::new(Open {
        span_id: if sampled {
            SpanId::new()
        } else {
            parent.unwrap_or_else(|| scope.span_id())
        },
        scope,
        parent,
        start: crate::performance::spans::now(),
        propagate,
        call: HttpCall {
            method: method.clone(),
            url,
            query,
            status: None,
            response_size: None,
            failure: None,
        },
    }))
}

/// `https://user:pass@host/path?query#frag` as `(https://host/path, Some(query))`: the
/// credentials and fragment never leave the request thread. The URL is kept once per
/// process, like statements: a service calls the same few endpoints all day.
fn split_url(url: &str) -> (Text, Option<String>) {
    let url = url.split_once('#').map_or(url, |(before, _)| before);
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, (!query.is_empty()).then_some(query)),
        None => (url, None),
    };
    let base = match base.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => Text::Owned(bounded(
                    &format!("{scheme}://{}", &rest[at + 1..]),
                    MAX_FIELD,
                )),
                None => Text::new(base, MAX_FIELD),
            }
        }
        None => Text::new(base, MAX_FIELD),
    };
    (base, query.map(|q| bounded(q, MAX_FIELD)))
}

/// An outgoing call in progress; see [`start`].
#[must_use = "the span ends when the guard drops"]
pub struct HttpClientSpan {
    inner: Option<Box<Open>>,
}

struct Open {
    scope: Arc<RequestScope>,
    parent: Option<SpanId>,
    /// The call's span when the request is sampled; else the span it runs under (the
    /// parent the called service is told of).
    span_id: SpanId,
    start: Instant,
    propagate: bool,
    call: HttpCall,
}

/// What a recorded call says, turned into a span on the worker.
#[derive(Debug)]
pub(crate) struct HttpCall {
    pub(crate) method: http::Method,
    /// Scheme, host, port and path: no credentials, no query.
    pub(crate) url: Text,
    /// The query as sent (scrubbed on the worker).
    pub(crate) query: Option<String>,
    pub(crate) status: Option<u16>,
    pub(crate) response_size: Option<u64>,
    /// Why the call failed before a response came.
    pub(crate) failure: Option<SpanStatus>,
}

impl HttpCall {
    /// The span's status: the failure's, else the response's; a call that ended with
    /// neither was abandoned (a timeout around it, a dropped future).
    pub(crate) fn span_status(&self) -> SpanStatus {
        match (self.failure, self.status) {
            (Some(failure), _) => failure,
            (None, Some(code)) => SpanStatus::from_http(code),
            (None, None) => SpanStatus::Cancelled,
        }
    }
}

impl HttpClientSpan {
    /// Whether the call is inside a request (it leaves a breadcrumb, and a span when
    /// the request is sampled).
    pub fn is_recording(&self) -> bool {
        self.inner.is_some()
    }

    /// The `traceparent` and `sentry-trace` values for the call, when it is inside a
    /// request and its URL is a propagation target.
    pub fn trace_headers(&self) -> Option<[(HeaderName, HeaderValue); 2]> {
        use std::fmt::Write;
        let open = self.inner.as_deref().filter(|open| open.propagate)?;
        let trace_id = open.scope.trace_id();
        let sampled = open.scope.is_sampled();
        // Written into buffers the header values then own: no second copy.
        let mut traceparent = String::with_capacity(55);
        let mut sentry_trace = String::with_capacity(51);
        let (flags, flag) = if sampled { ("01", "1") } else { ("00", "0") };
        write!(traceparent, "00-{trace_id}-{}-{flags}", open.span_id).ok()?;
        write!(sentry_trace, "{trace_id}-{}-{flag}", open.span_id).ok()?;
        let value = |text: String| HeaderValue::from_maybe_shared(bytes::Bytes::from(text)).ok();
        Some([
            (TRACEPARENT, value(traceparent)?),
            (SENTRY_TRACE, value(sentry_trace)?),
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
        if let Some(open) = &mut self.inner {
            open.call.status = Some(status);
        }
        self
    }

    /// The response body's size in bytes, where known.
    pub fn response_size(&mut self, bytes: u64) -> &mut Self {
        if let Some(open) = &mut self.inner {
            open.call.response_size = Some(bytes);
        }
        self
    }

    /// The call failed before a response came: a refused connection, a broken
    /// connection (`Unavailable`, `InternalError`) or a timeout (`DeadlineExceeded`).
    pub fn failed(&mut self, status: SpanStatus) -> &mut Self {
        if let Some(open) = &mut self.inner {
            open.call.failure = Some(status);
        }
        self
    }

    /// Ends the span now (the same as dropping it).
    pub fn finish(self) {}
}

impl fmt::Debug for HttpClientSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClientSpan")
            .field("recording", &self.is_recording())
            .finish_non_exhaustive()
    }
}

impl Drop for HttpClientSpan {
    fn drop(&mut self) {
        let Some(open) = self.inner.take() else {
            return;
        };
        let Open {
            scope,
            parent,
            span_id,
            start,
            propagate: _,
            call,
        } = *open;
        let took_ns = crate::performance::tracing::nanos_since(start);
        scope.configure(|s| s.add_breadcrumb(breadcrumb(&call)));
        if scope.is_sampled() {
            let status = Some(call.span_status());
            scope.record_span(Recorded {
                span_id,
                parent,
                start,
                took_ns,
                status,
                detail: Detail::Http(Box::new(call)),
            });
        }
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

/// `http` breadcrumb: method, URL and status (or why there is none).
fn breadcrumb(call: &HttpCall) -> Breadcrumb {
    let mut crumb = Breadcrumb {
        ty: "http".into(),
        category: Some("http".into()),
        level: match (call.failure, call.status) {
            (Some(_), _) | (None, None) | (None, Some(500..)) => Level::Error,
            (None, Some(400..)) => Level::Warning,
            _ => Level::Info,
        },
        ..Breadcrumb::default()
    };
    crumb
        .data
        .insert("method".into(), call.method.as_str().into());
    crumb.data.insert("url".into(), call.url.as_str().into());
    if let Some(query) = &call.query {
        crumb
            .data
            .insert("http.query".into(), query.as_str().into());
    }
    if let Some(status) = call.status {
        crumb.data.insert("status_code".into(), status.into());
    }
    if call.failure.is_some() || call.status.is_none() {
        crumb
            .data
            .insert("reason".into(), call.span_status().as_str().into());
    }
    crumb
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
            let (base, query) = split_url(url);
            (base.as_str().to_owned(), query)
        };
        assert_eq!(
            split("https://ann:pw@api.example:8443/a/b?x=1&token=2#top"),
            (
                "https://api.example:8443/a/b".to_owned(),
                Some("x=1&token=2".to_owned())
            )
        );
        assert_eq!(split("http://h/p?"), ("http://h/p".to_owned(), None));
        assert_eq!(split("http://h/a@b"), ("http://h/a@b".to_owned(), None));
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
