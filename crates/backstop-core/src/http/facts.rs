//! A request's facts, copied once at its start: what the response side and the worker
//! read of it.

use std::net::IpAddr;
use std::sync::Arc;

use super::{BodyCapture, RequestParts, build_request, is_valid_request_id};
use crate::protocol::Request;

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

/// Builds the request context on demand. Adapters hand one over instead of a built
/// [`Request`], so that the conversion (header maps into strings) happens on the worker
/// and only for requests that produce a record. Closures returning a `Request` are
/// sources.
pub trait BuildRequest: Send + Sync {
    /// The request context.
    fn build_request(&self) -> Request;

    /// About how many bytes the source holds on the heap (copied headers, a captured
    /// body); by default, what its [`facts`](Self::facts) hold. Once a transaction is
    /// processed, the worker hands small sources back for a request thread to free
    /// (see `crate::pipeline::reuse`), and frees big ones itself rather than keep them
    /// waiting in the pool.
    fn heap_bytes(&self) -> usize {
        self.facts().map_or(0, |facts| facts.heap_bytes())
    }

    /// The request's plain facts, when the source keeps them (both adapters' sources
    /// do). A transaction then carries a copy of them in its thread's batch, and the
    /// source never reaches the worker: its blocks are freed on the request thread
    /// that allocated them, however far behind the worker is.
    fn facts(&self) -> Option<RequestFacts<'_>> {
        None
    }
}

impl<F: Fn() -> Request + Send + Sync> BuildRequest for F {
    fn build_request(&self) -> Request {
        self()
    }
}

/// A shared [`BuildRequest`].
pub type RequestSource = Arc<dyn BuildRequest>;

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

impl BuildRequest for HttpRequest {
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
#[inline]
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

/// A request's facts ([`crate::http::RequestFacts`]) copied into a batch: the method,
/// then the flat buffer, from `at`.
pub(crate) struct CopiedRequest {
    at: u32,
    method_len: u32,
    flat_len: u32,
    uri_len: u32,
    id_len: u32,
    scheme: &'static str,
    version: &'static str,
    client_ip: Option<std::net::IpAddr>,
    body: Option<Arc<crate::http::BodyCapture>>,
}

impl CopiedRequest {
    /// Facts bigger than this stay with their source: a batch's bytes are kept for
    /// reuse, and a few huge requests would keep them large.
    const MAX_BYTES: usize = 16 * 1024;

    /// Appends `facts` to `bytes`; `None` (and nothing appended) when they are too big.
    pub(crate) fn copy(facts: &crate::http::RequestFacts<'_>, bytes: &mut Vec<u8>) -> Option<Self> {
        let (flat, uri_len, id_len) = facts.flat.raw();
        let method = facts.method.as_bytes();
        let len = method.len() + flat.len();
        let at = u32::try_from(bytes.len()).ok()?;
        if len > Self::MAX_BYTES || bytes.len() + len > u32::MAX as usize {
            return None;
        }
        bytes.extend_from_slice(method);
        bytes.extend_from_slice(flat);
        Some(CopiedRequest {
            at,
            method_len: method.len() as u32,
            flat_len: flat.len() as u32,
            uri_len,
            id_len,
            scheme: facts.scheme,
            version: facts.version,
            client_ip: facts.client_ip,
            body: facts.body.cloned(),
        })
    }

    /// The request context, from the batch's `bytes` it was copied into.
    pub(crate) fn build(&self, bytes: &[u8]) -> crate::protocol::Request {
        let at = self.at as usize;
        let method_end = at + self.method_len as usize;
        let end = method_end + self.flat_len as usize;
        let (method, flat) = match (bytes.get(at..method_end), bytes.get(method_end..end)) {
            (Some(method), Some(flat)) => (method, flat),
            // Never for bytes this copy was made into.
            _ => (&b""[..], &b""[..]),
        };
        let flat = crate::http::FlatView::from_raw(flat, self.uri_len, self.id_len);
        crate::http::RequestFacts {
            method: std::str::from_utf8(method).unwrap_or_default(),
            scheme: self.scheme,
            version: self.version,
            client_ip: self.client_ip,
            flat,
            body: self.body.as_ref(),
        }
        .build()
    }
}
