//! The panic hook.
//!
//! The hook runs on the panicking thread, so it only takes note: the message, the
//! location and an *unresolved* backtrace (instruction pointers; symbolising happens
//! later on the worker). It does no I/O, takes no lock that could block, and chains to
//! the hook that was installed before it.
//!
//! - Inside a request scope, the note is left in a thread-local for the adapter, which
//!   catches the panic with `catch_unwind` and records it with the request's context
//!   (and answers with a 500 page).
//! - Outside any scope (a background thread), the hook records the panic itself through
//!   the global client, with a non-blocking enqueue.
//!
//! Which of the two applies is the client's to decide (it hands [`install_hook`] the
//! router), so this module needs nothing but the protocol.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::PanicHookInfo;
use std::sync::Once;

use crate::protocol::{Event, EventId, Exception, Level, Mechanism, Values};

/// What the hook saw of one panic.
pub(crate) struct PanicRecord {
    message: String,
    location: Option<String>,
    thread: Option<String>,
    backtrace: Option<backtrace::Backtrace>,
}

impl PanicRecord {
    fn from_hook(info: &PanicHookInfo<'_>) -> Self {
        PanicRecord {
            message: payload_message(info.payload()),
            location: info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column())),
            thread: std::thread::current().name().map(str::to_owned),
            backtrace: Some(backtrace::Backtrace::new_unresolved()),
        }
    }

    /// For a panic the hook did not see (another hook replaced ours): no backtrace.
    pub(crate) fn from_payload(payload: &(dyn Any + Send)) -> Self {
        PanicRecord {
            message: payload_message(payload),
            location: None,
            thread: std::thread::current().name().map(str::to_owned),
            backtrace: None,
        }
    }
}

/// What the debug page shows of a panic.
#[derive(Debug, Clone, Default)]
pub struct PanicDetails {
    /// The panic message.
    pub message: String,
    /// `file:line:column`, when the hook saw it.
    pub location: Option<String>,
    /// The stack, outermost caller first; empty unless asked for.
    pub frames: Vec<crate::protocol::Frame>,
}

impl PanicRecord {
    /// The details, symbolising a copy of the backtrace when `frames` is set (slow:
    /// only for the development debug page).
    pub(crate) fn details(
        &self,
        settings: &crate::options::Settings,
        frames: bool,
    ) -> PanicDetails {
        PanicDetails {
            message: self.message.clone(),
            location: self.location.clone(),
            frames: match (&self.backtrace, frames) {
                (Some(bt), true) => {
                    crate::capture::stacktrace::from_backtrace(bt.clone(), settings).frames
                }
                _ => Vec::new(),
            },
        }
    }
}

/// The message of a panic payload (`&str` or `String`, as `panic!` makes them).
pub fn payload_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_owned()
    }
}

thread_local! {
    static LAST_PANIC: RefCell<Option<PanicRecord>> = const { RefCell::new(None) };
    static REPORTED: Cell<Option<EventId>> = const { Cell::new(None) };
    static IS_WORKER: Cell<bool> = const { Cell::new(false) };
}

/// The worker catches panics of callbacks and sinks itself; the hook must not turn
/// them into events (which would run the same callback again).
pub(crate) fn mark_worker_thread() {
    IS_WORKER.with(|w| w.set(true));
}

pub(crate) fn take_last() -> Option<PanicRecord> {
    LAST_PANIC.with(|l| l.try_borrow_mut().ok().and_then(|mut l| l.take()))
}

pub(crate) fn take_reported() -> Option<EventId> {
    REPORTED.with(Cell::take)
}

pub(crate) fn set_reported(id: EventId) {
    REPORTED.with(|r| r.set(Some(id)));
}

/// Installs the hook once per process, chained to the previous one. `route` receives
/// what the hook saw of each panic (off the worker thread).
pub(crate) fn install_hook(route: fn(PanicRecord)) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            on_panic(info, route);
            previous(info);
        }));
    });
}

fn on_panic(info: &PanicHookInfo<'_>, route: fn(PanicRecord)) {
    if IS_WORKER.with(Cell::get) {
        return;
    }
    route(PanicRecord::from_hook(info));
}

/// Leaves `record` on this thread for the request scope that catches the panic (see
/// [`take_last`]).
pub(crate) fn leave_for_scope(record: PanicRecord) {
    LAST_PANIC.with(|l| {
        if let Ok(mut l) = l.try_borrow_mut() {
            *l = Some(record);
        }
    });
    REPORTED.with(|r| r.set(None));
}

/// The event for a panic: an unhandled `panic` exception, level fatal.
pub(crate) fn panic_event(record: PanicRecord) -> (Event, Option<backtrace::Backtrace>) {
    let mut mechanism = Mechanism::new("panic", false);
    if let Some(location) = &record.location {
        mechanism
            .data
            .insert("location".into(), location.clone().into());
    }
    let mut event = Event::new(Level::Fatal);
    event.exception = Values {
        values: vec![Exception {
            ty: "panic".into(),
            value: Some(record.message),
            module: None,
            stacktrace: None,
            mechanism: Some(mechanism),
        }],
    };
    if let Some(thread) = record.thread {
        event.extra.insert("thread".into(), thread.into());
    }
    (event, record.backtrace)
}
