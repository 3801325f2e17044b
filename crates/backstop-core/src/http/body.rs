//! Request body capture, shared by the adapters: [`BodyCapture`] keeps the bytes, and
//! [`Tee`] wraps a body so each chunk the handler reads is also copied into it.

use std::sync::Arc;

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

pin_project_lite::pin_project! {
    /// A request body whose chunks are copied into a [`BodyCapture`] as the handler
    /// reads them: an `http_body::Body` (feature `tower`), or a stream of byte chunks
    /// such as actix's payload (feature `stream`). Nothing is read ahead.
    pub struct Tee<B> {
        #[pin]
        inner: B,
        capture: Arc<BodyCapture>,
    }
}

impl<B> Tee<B> {
    /// Wraps `inner`, keeping up to `limit` bytes; returns the capture its chunks are
    /// copied into.
    pub fn new(inner: B, limit: usize) -> (Self, Arc<BodyCapture>) {
        let capture = Arc::new(BodyCapture::new(limit));
        let tee = Tee {
            inner,
            capture: capture.clone(),
        };
        (tee, capture)
    }
}

#[cfg(feature = "tower")]
impl<B: http_body::Body<Data = bytes::Bytes>> http_body::Body for Tee<B> {
    type Data = bytes::Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, B::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
        {
            this.capture.push(data);
        }
        std::task::Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(feature = "stream")]
impl<S, E> futures_core::Stream for Tee<S>
where
    S: futures_core::Stream<Item = Result<bytes::Bytes, E>>,
{
    type Item = S::Item;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<S::Item>> {
        let this = self.project();
        let polled = this.inner.poll_next(cx);
        if let std::task::Poll::Ready(Some(Ok(chunk))) = &polled {
            this.capture.push(chunk);
        }
        polled
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}
