//! Outgoing reqwest calls as `http.client` spans, with trace propagation: a
//! [`reqwest-middleware`](reqwest_middleware) middleware.
//!
//! ```
//! use reqwest_middleware::ClientBuilder;
//!
//! let client = ClientBuilder::new(reqwest::Client::new())
//!     .with(backstop_core::reqwest::Tracing::new())
//!     .build();
//! # let _ = client;
//! ```
//!
//! Each call made inside a request is a span of it, carries the trace headers, and
//! leaves a breadcrumb; see [`outgoing`](crate::outgoing). Calls outside any request
//! pass through untouched.

use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next, Result};

use crate::protocol::SpanStatus;

/// The middleware; see the [module docs](self).
#[derive(Debug, Clone, Copy, Default)]
pub struct Tracing {
    _private: (),
}

impl Tracing {
    /// The middleware.
    pub fn new() -> Self {
        Tracing::default()
    }
}

#[async_trait::async_trait]
impl Middleware for Tracing {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> Result<Response> {
        let mut span = crate::outgoing::start(req.method(), req.url().as_str());
        if !span.is_recording() {
            return next.run(req, extensions).await;
        }
        span.inject(req.headers_mut());
        let result = next.run(req, extensions).await;
        match &result {
            Ok(response) => {
                span.status(response.status().as_u16());
                if let Some(size) = response.content_length() {
                    span.response_size(size);
                }
            }
            Err(error) => {
                span.failed(failure(error));
            }
        }
        result
    }
}

/// The span status of a call that got no response.
fn failure(error: &reqwest_middleware::Error) -> SpanStatus {
    match error {
        reqwest_middleware::Error::Reqwest(e) if e.is_timeout() => SpanStatus::DeadlineExceeded,
        reqwest_middleware::Error::Reqwest(e) if e.is_connect() => SpanStatus::Unavailable,
        _ => SpanStatus::InternalError,
    }
}
