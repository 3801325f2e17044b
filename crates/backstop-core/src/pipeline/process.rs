//! What the worker does to each record before the sinks see it: fill in the client's
//! defaults, resolve the backtrace, group, scrub, then run the team's `before_send`.

use std::borrow::Cow;
use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::options::Settings;
use crate::performance::sql::Normalizer;
use crate::pipeline::{
    Counters, DropReason, Kind, PendingEvent, PendingTransaction, Record, TxRequest,
};
use crate::protocol::{Event, SdkInfo, TraceContext, Transaction};

pub(crate) struct Processor {
    settings: Arc<Settings>,
    /// Where span lists and what transactions are done with go back to.
    reuse: crate::pipeline::reuse::Reuse,
    counters: Arc<Counters>,
    logged_panic: AtomicBool,
    /// Normalised statements, cached: the worker sees the same queries over and over.
    normalizer: RefCell<Normalizer>,
}

impl Processor {
    pub(crate) fn new(
        settings: Arc<Settings>,
        counters: Arc<Counters>,
        reuse: crate::pipeline::reuse::Reuse,
    ) -> Self {
        Processor {
            settings,
            reuse,
            counters,
            logged_panic: AtomicBool::new(false),
            normalizer: RefCell::new(Normalizer::default()),
        }
    }

    pub(crate) fn event(&self, pending: PendingEvent) -> Option<Record> {
        match catch_unwind(AssertUnwindSafe(|| self.event_inner(pending))) {
            Ok(Ok(event)) => Some(Record::Event(Box::new(event))),
            Ok(Err(why)) => {
                self.counters.dropped(Kind::Event, why, 1);
                None
            }
            Err(panic) => {
                self.panicked(Kind::Event, &*panic);
                None
            }
        }
    }

    pub(crate) fn transaction(&self, pending: PendingTransaction) -> Option<Record> {
        match catch_unwind(AssertUnwindSafe(|| self.transaction_inner(pending))) {
            Ok(Ok(t)) => Some(Record::Transaction(Box::new(t))),
            Ok(Err(why)) => {
                self.counters.dropped(Kind::Transaction, why, 1);
                None
            }
            Err(panic) => {
                self.panicked(Kind::Transaction, &*panic);
                None
            }
        }
    }

    /// What sinks are told of a transaction before it is processed.
    pub(crate) fn summary<'a>(
        &self,
        pending: &'a PendingTransaction,
    ) -> crate::pipeline::TransactionSummary<'a> {
        use crate::scope::spans::{Detail, PendingSpan};
        let clock = crate::scope::spans::Clock::of(pending.started);
        let may_have_problem = self.settings.detectors.as_ref().is_some_and(|thresholds| {
            let too_many = thresholds.too_many_queries.max(1);
            let mut texts: Vec<&str> = Vec::new();
            let mut calls = 0;
            for span in &pending.spans {
                let PendingSpan::Recorded(recorded) = span else {
                    continue;
                };
                let took = std::time::Duration::from_nanos(recorded.took_ns);
                let text = match &recorded.detail {
                    Detail::Statement(statement) => statement.text.as_str(),
                    Detail::Query(query) => query.statement.as_str(),
                    Detail::Traced {
                        query: Some(query), ..
                    } => query.statement.as_str(),
                    Detail::Traced { .. } | Detail::Cache(_) => continue,
                    // Calls are few; their URLs are normalised only on the worker, so
                    // enough of them for an N+1, or a slow one, may be a problem.
                    Detail::Http(_) => {
                        calls += 1;
                        if calls >= thresholds.n_plus_one_calls.max(2)
                            || took >= thresholds.slow_call
                        {
                            return true;
                        }
                        continue;
                    }
                };
                // Statements are interned, so the same text again is mostly the same
                // pointer; texts past the intern budget compare by content.
                let repeat = texts
                    .iter()
                    .any(|seen| std::ptr::eq(*seen, text) || *seen == text);
                let slow = took >= thresholds.slow_query;
                texts.push(text);
                if repeat || slow || texts.len() >= too_many {
                    return true;
                }
            }
            false
        });
        crate::pipeline::TransactionSummary {
            event_id: pending.event_id,
            name: pending.name.as_str(),
            ended: clock.at(pending.ended),
            duration: pending.ended.saturating_duration_since(pending.started),
            error: crate::metrics::is_error(pending.status, pending.http_status),
            may_have_problem,
        }
    }

    /// Lets go of a transaction no sink wants: its span list goes back for reuse, and
    /// what a request thread allocated is freed on one (see `crate::pipeline::reuse`).
    pub(crate) fn discard(&self, pending: PendingTransaction) {
        use crate::scope::spans::{Detail, PendingSpan};
        let PendingTransaction {
            mut spans, trace, ..
        } = pending;
        let queries = spans.drain(..).filter_map(|span| match span {
            PendingSpan::Recorded(recorded) => match recorded.detail {
                Detail::Query(query) => Some(query),
                _ => None,
            },
            PendingSpan::Done(_) => None,
        });
        self.reuse.retire(trace.request_source, queries);
        self.reuse.recycle_span_list(spans);
    }

    fn event_inner(&self, pending: PendingEvent) -> Result<Event, DropReason> {
        let settings = &*self.settings;
        let PendingEvent {
            mut event,
            backtrace,
            trace,
        } = pending;
        if let Some(trace) = trace {
            event.contexts.entry("trace".into()).or_insert_with(|| {
                serde_json::json!({
                    "trace_id": trace.trace_id,
                    "span_id": trace.span_id,
                    "op": trace.op,
                })
            });
            if event.request.is_none()
                && let Some(source) = &trace.request_source
            {
                event.request = Some(source.build_request());
            }
        }
        if let Some(request) = &event.request {
            crate::http::user_agent_contexts(request, &mut event.contexts);
        }
        fill_defaults(
            settings,
            &mut event.release,
            &mut event.environment,
            &mut event.server_name,
            &mut event.sdk,
        );
        if let Some(backtrace) = backtrace {
            let stacktrace = crate::capture::stacktrace::from_backtrace(backtrace, settings);
            if let Some(exception) = event.exception.values.last_mut() {
                exception.stacktrace = Some(stacktrace);
            }
        }
        for exception in &mut event.exception.values {
            if let Some(stacktrace) = &mut exception.stacktrace {
                crate::capture::stacktrace::mark_in_app(stacktrace, settings);
            }
        }
        if crate::capture::fingerprint::is_ignored(&event, &settings.ignore_errors) {
            return Err(DropReason::Ignored);
        }
        crate::capture::fingerprint::apply(&mut event);
        settings.scrub.event(&mut event);
        match &settings.before_send {
            None => Ok(event),
            Some(before_send) => match catch_unwind(AssertUnwindSafe(|| before_send(event))) {
                Ok(Some(event)) => Ok(event),
                Ok(None) => Err(DropReason::BeforeSend),
                Err(panic) => {
                    self.counters.callback_panicked();
                    self.log_panic("before_send", &*panic);
                    Err(DropReason::Panicked)
                }
            },
        }
    }

    fn transaction_inner(&self, pending: PendingTransaction) -> Result<Transaction, DropReason> {
        let settings = &*self.settings;
        let PendingTransaction {
            event_id,
            name,
            started,
            ended,
            mut spans,
            spans_dropped,
            context,
            mut trace,
            parent_span_id,
            status,
            http_status,
            late_spans: _,
            mut data,
            request,
        } = pending;
        let name = name.into_string();
        let context = context.map(|c| *c).unwrap_or_default();
        let mut extra = context.extra;
        if spans_dropped > 0 {
            extra.insert("spans_dropped".into(), spans_dropped.into());
        }
        let clock = crate::scope::spans::Clock::of(started);
        let assembled = crate::performance::spans::assemble(
            &mut spans,
            clock,
            trace.trace_id,
            trace.span_id,
            &mut self.normalizer.borrow_mut(),
            settings.send_default_pii,
        );
        self.reuse.recycle_span_list(spans);
        let problems = match &settings.detectors {
            Some(thresholds) => {
                let mut problems =
                    crate::performance::detect::detect(&name, &assembled.query_spans(), thresholds);
                problems.extend(crate::performance::detect::detect_calls(
                    &name,
                    &assembled.call_spans(),
                    thresholds,
                ));
                problems
            }
            None => Vec::new(),
        };
        let crate::performance::spans::Assembled { spans, queries, .. } = assembled;
        if let Some(code) = http_status {
            data.insert("http.response.status_code".into(), code.into());
        }
        let mut transaction = Transaction {
            event_id,
            ty: Cow::Borrowed("transaction"),
            name,
            start_timestamp: clock.start,
            timestamp: clock.at(ended),
            platform: Cow::Borrowed("native"),
            trace: TraceContext {
                trace_id: trace.trace_id,
                span_id: trace.span_id,
                parent_span_id,
                op: Some(std::mem::take(&mut trace.op)),
                status: Some(status),
                data,
            },
            contexts: context.contexts,
            spans,
            release: None,
            environment: None,
            server_name: None,
            user: context.user,
            request: context.request,
            tags: context.tags,
            extra,
            sdk: None,
            problems,
        };
        if transaction.request.is_none() {
            transaction.request = match request {
                TxRequest::Built(request) => Some(*request),
                // `Copied` cannot arrive: a batch is only emptied through
                // `Batch::take_each`, which builds it.
                TxRequest::Copied(_) | TxRequest::FromSource => {
                    trace.request_source.as_ref().map(|s| s.build_request())
                }
            };
        }
        let queries = queries
            .into_iter()
            .filter_map(crate::performance::spans::QueryRef::into_record);
        self.reuse.retire(trace.request_source.take(), queries);
        if let Some(request) = &transaction.request {
            crate::http::user_agent_contexts(request, &mut transaction.contexts);
        }
        fill_defaults(
            settings,
            &mut transaction.release,
            &mut transaction.environment,
            &mut transaction.server_name,
            &mut transaction.sdk,
        );
        settings.scrub.transaction(&mut transaction);
        // From the scrubbed keys: a prefix is never a secret the scrubber filtered.
        if let Some(rates) = crate::performance::cache::hit_rates(&transaction.spans) {
            transaction.contexts.insert("cache".into(), rates);
        }
        match &settings.before_send_transaction {
            None => Ok(transaction),
            Some(f) => match catch_unwind(AssertUnwindSafe(|| f(transaction))) {
                Ok(Some(t)) => Ok(t),
                Ok(None) => Err(DropReason::BeforeSend),
                Err(panic) => {
                    self.counters.callback_panicked();
                    self.log_panic("before_send_transaction", &*panic);
                    Err(DropReason::Panicked)
                }
            },
        }
    }

    fn panicked(&self, kind: Kind, panic: &(dyn std::any::Any + Send)) {
        self.counters.dropped(kind, DropReason::Panicked, 1);
        self.log_panic("processing", panic);
    }

    /// Logs the first panic only: a callback that panics does so on every record.
    fn log_panic(&self, what: &str, panic: &(dyn std::any::Any + Send)) {
        if !self.logged_panic.swap(true, Ordering::Relaxed) {
            tracing::error!(
                target: "backstop",
                "{what} panicked; the record was dropped (further panics are only counted): {}",
                crate::capture::panic::payload_message(panic)
            );
        }
    }
}

fn fill_defaults(
    settings: &Settings,
    release: &mut Option<String>,
    environment: &mut Option<String>,
    server_name: &mut Option<String>,
    sdk: &mut Option<SdkInfo>,
) {
    if release.is_none() {
        release.clone_from(&settings.release);
    }
    if environment.is_none() {
        *environment = Some(settings.environment.clone());
    }
    if server_name.is_none() {
        server_name.clone_from(&settings.server_name);
    }
    if sdk.is_none() {
        *sdk = Some(SdkInfo::backstop());
    }
}
