//! Continuing a caller's trace from W3C `traceparent` or Sentry's `sentry-trace`.
//!
//! Both adapters read the header values and hand them here, so the parsing rules live
//! once.
//!
//! ```
//! use backstop_core::TraceParent;
//!
//! let parent = TraceParent::parse_traceparent(
//!     "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
//! ).unwrap();
//! assert_eq!(parent.sampled, Some(true));
//! assert_eq!(parent.trace_id.to_string(), "0af7651916cd43dd8448eb211c80319c");
//! ```

use crate::protocol::{SpanId, TraceId};

/// The caller's place in a trace, and its sampling decision if it made one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace to join.
    pub trace_id: TraceId,
    /// The caller's span: the new transaction's parent.
    pub parent_span_id: SpanId,
    /// The caller's sampling decision: `None` when it left it to us.
    pub sampled: Option<bool>,
}

impl TraceParent {
    /// Reads `traceparent` first, then `sentry-trace`. Malformed values are ignored
    /// (the request starts a new trace), never an error.
    pub fn from_values(traceparent: Option<&[u8]>, sentry_trace: Option<&[u8]>) -> Option<Self> {
        fn text(v: Option<&[u8]>) -> Option<&str> {
            v.and_then(|v| std::str::from_utf8(v).ok())
        }
        text(traceparent)
            .and_then(Self::parse_traceparent)
            .or_else(|| text(sentry_trace).and_then(Self::parse_sentry_trace))
    }

    /// Reads the headers of an `http` request.
    pub fn from_headers(headers: &http::HeaderMap) -> Option<Self> {
        Self::from_values(
            headers.get("traceparent").map(|v| v.as_bytes()),
            headers.get("sentry-trace").map(|v| v.as_bytes()),
        )
    }

    /// `{version}-{trace-id}-{parent-id}-{flags}`, per W3C Trace Context. Version `ff`
    /// and all-zero ids are invalid; a future version may carry more fields after the
    /// flags.
    pub fn parse_traceparent(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let version = parts.next()?;
        let trace_id = parts.next()?;
        let span_id = parts.next()?;
        let flags = parts.next()?;
        if version.len() != 2 || version.eq_ignore_ascii_case("ff") || flags.len() != 2 {
            return None;
        }
        if version == "00" && parts.next().is_some() {
            return None;
        }
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Self::build(trace_id, span_id, Some(flags & 1 == 1))
    }

    /// `{trace-id}-{span-id}[-{sampled}]`, where sampled is `1` or `0`.
    pub fn parse_sentry_trace(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let trace_id = parts.next()?;
        let span_id = parts.next()?;
        let sampled = match parts.next() {
            None => None,
            Some("1") => Some(true),
            Some("0") => Some(false),
            Some(_) => return None,
        };
        if parts.next().is_some() {
            return None;
        }
        Self::build(trace_id, span_id, sampled)
    }

    fn build(trace_id: &str, span_id: &str, sampled: Option<bool>) -> Option<Self> {
        let trace_id: TraceId = trace_id.to_ascii_lowercase().parse().ok()?;
        let parent_span_id: SpanId = span_id.to_ascii_lowercase().parse().ok()?;
        if trace_id.is_zero() || parent_span_id.is_zero() {
            return None;
        }
        Some(TraceParent {
            trace_id,
            parent_span_id,
            sampled,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent() {
        let ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let p = TraceParent::parse_traceparent(ok).unwrap();
        assert_eq!(p.sampled, Some(false));
        assert_eq!(p.parent_span_id.to_string(), "00f067aa0ba902b7");
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473z-00f067aa0ba902b7-01",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse_traceparent(bad), None, "{bad}");
        }
        // A future version may append fields.
        assert!(
            TraceParent::parse_traceparent(
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what"
            )
            .is_some()
        );
    }

    #[test]
    fn sentry_trace() {
        let p =
            TraceParent::parse_sentry_trace("771a43a4192642f0b136d5159a501700-b2b7b5d1c0b8e9a2-1")
                .unwrap();
        assert_eq!(p.sampled, Some(true));
        let p =
            TraceParent::parse_sentry_trace("771a43a4192642f0b136d5159a501700-b2b7b5d1c0b8e9a2")
                .unwrap();
        assert_eq!(p.sampled, None);
        assert!(TraceParent::parse_sentry_trace("771a43a4-b2b7b5d1c0b8e9a2-1").is_none());
        assert!(
            TraceParent::parse_sentry_trace("771a43a4192642f0b136d5159a501700-b2b7b5d1c0b8e9a2-2")
                .is_none()
        );
    }

    #[test]
    fn traceparent_wins_over_sentry_trace() {
        let p = TraceParent::from_values(
            Some(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some(b"771a43a4192642f0b136d5159a501700-b2b7b5d1c0b8e9a2-0"),
        )
        .unwrap();
        assert_eq!(p.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let p = TraceParent::from_values(
            Some(b"garbage"),
            Some(b"771a43a4192642f0b136d5159a501700-b2b7b5d1c0b8e9a2-0"),
        )
        .unwrap();
        assert_eq!(p.sampled, Some(false));
        assert!(TraceParent::from_values(Some(&[0xff, 0xfe]), None).is_none());
    }
}
