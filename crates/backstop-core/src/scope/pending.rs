//! What a finished scope hands to the pipeline: a [`PendingTransaction`] with its
//! [`TraceLink`], name and context, raw parts only; the worker assembles Sentry's
//! `Transaction` from it. Declared here, beside the scope that makes them, so the
//! scope never imports the pipeline.

use std::time::Duration;

use crate::http::CopiedRequest;

/// Links a record to the request it happened in: its trace, and how to build its
/// request context.
pub(crate) struct TraceLink {
    pub(crate) trace_id: crate::protocol::TraceId,
    pub(crate) span_id: crate::protocol::SpanId,
    pub(crate) op: std::borrow::Cow<'static, str>,
    pub(crate) request_source: Option<crate::http::RequestSource>,
}

/// A finished transaction as the request thread hands it over: the raw parts only.
/// The worker assembles Sentry's `Transaction` (contexts, request, defaults).
pub(crate) struct PendingTransaction {
    pub(crate) event_id: crate::protocol::EventId,
    /// Inline: the record is one allocation, which the worker frees (see [`TxName`]).
    pub(crate) name: TxName,
    pub(crate) started: crate::scope::spans::Instant,
    pub(crate) ended: crate::scope::spans::Instant,
    pub(crate) spans: Vec<crate::scope::spans::PendingSpan>,
    pub(crate) spans_dropped: u64,
    /// The scope's user, tags, contexts, extra and request, when any was set.
    pub(crate) context: Option<Box<ScopeContext>>,
    pub(crate) trace: TraceLink,
    pub(crate) parent_span_id: Option<crate::protocol::SpanId>,
    pub(crate) status: crate::protocol::SpanStatus,
    pub(crate) http_status: Option<u16>,
    /// Whether spans may still join it: something besides the finishing code held its
    /// scope when it finished (a task, a live tracing span). Only then does the worker
    /// hold it for [`LATE_SPAN_GRACE`]; otherwise it is processed on arrival.
    pub(crate) late_spans: bool,
    pub(crate) data: crate::protocol::Map,
    /// The request context, once its facts were copied into the batch (otherwise the
    /// worker builds it from `trace.request_source`).
    pub(crate) request: TxRequest,
}

/// A transaction's request context on its way to the worker.
#[derive(Default)]
pub(crate) enum TxRequest {
    /// Built from the trace's request source, if it has one.
    #[default]
    FromSource,
    /// The source's facts, copied into the batch's bytes.
    Copied(CopiedRequest),
    /// Built by the worker when it took the batch in (the batch's bytes go back).
    Built(Box<crate::protocol::Request>),
}

impl PendingTransaction {
    /// Builds a copied request context from its batch's `bytes`, before the batch is
    /// reused (see `Batch::take_each`, its one caller).
    pub(crate) fn take_in(&mut self, bytes: &[u8]) {
        if let TxRequest::Copied(copied) = &self.request {
            self.request = TxRequest::Built(Box::new(copied.build(bytes)));
        }
    }
}

/// A transaction's name, kept inside the record when it is short (as route names are):
/// the worker frees what the request thread allocated, and for glibc each such free is
/// a cross-thread one, much dearer than a copy of a few bytes.
#[derive(Clone)]
pub(crate) enum TxName {
    /// A `str` held in place, read back without checking it again.
    Inline(arrayvec::ArrayString<{ TxName::INLINE }>),
    Heap(String),
}

impl TxName {
    const INLINE: usize = 80;

    pub(crate) fn new(name: &str) -> Self {
        Self::from_pieces(&[name])
    }

    /// The pieces written one after the other (`["GET", " ", "/users/{id}"]`), without
    /// formatting or, when short, allocating.
    pub(crate) fn from_pieces(pieces: &[&str]) -> Self {
        let len: usize = pieces.iter().map(|p| p.len()).sum();
        if len <= Self::INLINE {
            let mut name = arrayvec::ArrayString::new();
            for piece in pieces {
                name.push_str(piece);
            }
            TxName::Inline(name)
        } else {
            TxName::Heap(pieces.concat())
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            TxName::Inline(name) => name,
            TxName::Heap(name) => name,
        }
    }

    pub(crate) fn into_string(self) -> String {
        match self {
            TxName::Heap(name) => name,
            inline => inline.as_str().to_owned(),
        }
    }
}

/// What a transaction carries of its scope.
#[derive(Default)]
pub(crate) struct ScopeContext {
    pub(crate) user: Option<crate::protocol::User>,
    pub(crate) tags: std::collections::BTreeMap<String, String>,
    pub(crate) contexts: std::collections::BTreeMap<String, serde_json::Value>,
    pub(crate) extra: crate::protocol::Map,
    pub(crate) request: Option<crate::protocol::Request>,
}

/// How long the worker holds a transaction before processing it, so that spans closing
/// just after the request finished still join it: a database driver's thread, for
/// instance, may drop its handle on the request's span a moment after it replied.
/// Spans later than this are counted as dropped. A flush processes everything held.
pub(crate) const LATE_SPAN_GRACE: Duration = Duration::from_millis(30);
