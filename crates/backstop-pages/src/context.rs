//! What a page knows about the request that failed.

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde::Serialize;

/// What an error page knows about the request: path, method, the recorded event's id,
/// a detail text, debug details and the headers that belong to the status.
///
/// ```
/// use backstop_pages::PageContext;
/// use http::{HeaderValue, Method, header};
///
/// let ctx = PageContext::new(Method::GET, "/orders/42")
///     .with_event_id("4f1c2e0a9b7d4e5f8a6b3c2d1e0f9a8b")
///     .with_header(header::RETRY_AFTER, HeaderValue::from_static("30"));
/// assert_eq!(ctx.path, "/orders/42");
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct PageContext {
    /// The request method.
    pub method: Method,
    /// The request path, optionally with its query. Shown escaped.
    pub path: String,
    /// The id of the event recorded for this error, shown as a reference.
    pub event_id: Option<String>,
    /// A short explanation, such as an extractor's rejection text. Shown on 4xx pages,
    /// and on 5xx pages only when debug is on.
    pub detail: Option<String>,
    /// What the debug page shows. Only rendered when debug is on.
    pub debug: Option<DebugDetails>,
    /// Headers of the original response. Only those that belong to the status
    /// ([`status_headers`](crate::status_headers)) are kept on the page.
    pub headers: HeaderMap,
}

impl PageContext {
    /// A context for a request.
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            ..Self::default()
        }
    }

    /// Sets the recorded event's id.
    #[must_use]
    pub fn with_event_id(mut self, event_id: impl Into<String>) -> Self {
        self.event_id = Some(event_id.into());
        self
    }

    /// Sets the detail text.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Sets the debug details.
    #[must_use]
    pub fn with_debug(mut self, debug: DebugDetails) -> Self {
        self.debug = Some(debug);
        self
    }

    /// Sets the original response's headers; the page keeps those that belong to the
    /// status.
    #[must_use]
    pub fn with_headers(mut self, headers: HeaderMap) -> Self {
        self.headers = headers;
        self
    }

    /// Adds one header of the original response.
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }
}

/// What the debug page shows: the panic or error message, the error chain, the
/// backtrace and a summary of the request. Never rendered in production.
///
/// ```
/// use backstop_pages::{BacktraceFrame, DebugDetails};
///
/// let details = DebugDetails::new("called `Option::unwrap()` on a `None` value")
///     .with_cause("database is locked")
///     .with_frame(BacktraceFrame::new("shop::orders::load").at("src/orders.rs", 42).in_app(true))
///     .with_request_field("User-Agent", "curl/8.5");
/// assert_eq!(details.chain.len(), 1);
/// ```
#[derive(Clone, Debug, Default, Serialize)]
#[non_exhaustive]
pub struct DebugDetails {
    /// The panic message or the error's `Display`.
    pub message: String,
    /// The error's sources, outermost first.
    pub chain: Vec<String>,
    /// The backtrace, innermost frame first.
    pub frames: Vec<BacktraceFrame>,
    /// A summary of the request as name/value pairs (method, headers, ...).
    pub request: Vec<(String, String)>,
}

impl DebugDetails {
    /// Details with a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            ..Self::default()
        }
    }

    /// Adds one cause to the error chain.
    #[must_use]
    pub fn with_cause(mut self, cause: impl Into<String>) -> Self {
        self.chain.push(cause.into());
        self
    }

    /// Adds a backtrace frame.
    #[must_use]
    pub fn with_frame(mut self, frame: BacktraceFrame) -> Self {
        self.frames.push(frame);
        self
    }

    /// Adds a request field.
    #[must_use]
    pub fn with_request_field(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.request.push((name.into(), value.into()));
        self
    }

    /// Fills the chain from an error's `source()` list.
    #[must_use]
    pub fn with_chain_of(mut self, error: &(dyn std::error::Error + 'static)) -> Self {
        let mut source = error.source();
        while let Some(cause) = source {
            self.chain.push(cause.to_string());
            source = cause.source();
        }
        self
    }
}

/// One frame of a backtrace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BacktraceFrame {
    /// The function's name.
    pub function: String,
    /// The source file, when known.
    pub file: Option<String>,
    /// The line, when known.
    pub line: Option<u32>,
    /// Whether the frame is the application's own code (highlighted on the page).
    pub in_app: bool,
}

impl BacktraceFrame {
    /// A frame in a function.
    pub fn new(function: impl Into<String>) -> Self {
        Self {
            function: function.into(),
            ..Self::default()
        }
    }

    /// Sets the file and line.
    #[must_use]
    pub fn at(mut self, file: impl Into<String>, line: u32) -> Self {
        self.file = Some(file.into());
        self.line = Some(line);
        self
    }

    /// Marks the frame as the application's own code, or not.
    #[must_use]
    pub fn in_app(mut self, in_app: bool) -> Self {
        self.in_app = in_app;
        self
    }
}

#[cfg(feature = "core")]
impl DebugDetails {
    /// What the debug page shows of a panic the adapter caught: the message, the
    /// frames (innermost first, the application's own marked) and where it panicked.
    pub fn from_panic(panic: &backstop_core::PanicDetails) -> Self {
        let mut details = DebugDetails::new(panic.message.clone());
        for frame in panic.frames.iter().rev() {
            let function = match (&frame.module, &frame.function) {
                (Some(module), Some(function)) => format!("{module}::{function}"),
                (None, Some(function)) => function.clone(),
                _ => "<unknown>".to_owned(),
            };
            let mut shown = BacktraceFrame::new(function).in_app(frame.in_app == Some(true));
            if let (Some(file), Some(line)) = (&frame.filename, frame.lineno) {
                shown = shown.at(file.clone(), u32::try_from(line).unwrap_or(u32::MAX));
            }
            details = details.with_frame(shown);
        }
        if let Some(location) = &panic.location {
            details = details.with_request_field("panicked at", location.clone());
        }
        details
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(Inner);
    #[derive(Debug)]
    struct Inner;
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("outer")
        }
    }
    impl std::fmt::Display for Inner {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("inner")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    impl std::error::Error for Inner {}

    #[test]
    fn chain_follows_sources() {
        let error = Outer(Inner);
        let details = DebugDetails::new(error.to_string()).with_chain_of(&error);
        assert_eq!(details.message, "outer");
        assert_eq!(details.chain, ["inner"]);
    }
}
