//! Request body capture, shared by the adapters.

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
