//! [`KnownErrors`]: a framework's type-erased error seen as a `std::error::Error`
//! again, with its `source()` chain.
//!
//! actix keeps a response's error as `Box<dyn ResponseError>`, a trait that asks only
//! for `Debug + Display`. The concrete type can be recovered by downcasting, so the
//! adapter keeps a short list of types it knows (plus those the team names) and asks
//! each in turn.

use std::error::Error as StdError;
use std::fmt;

use super::PageDebug;
use crate::http::error_response_event;
use crate::protocol::Event;

/// One known error type: how to find it behind the framework's error `X`.
pub struct KnownError<X> {
    /// The event, built with the concrete type so its name is the real one.
    pub event: fn(&X, u16) -> Option<Event>,
    /// The error as a `std` error, for the debug page's chain.
    pub as_std: for<'a> fn(&'a X) -> Option<&'a (dyn StdError + 'static)>,
}

impl<X> Clone for KnownError<X> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<X> Copy for KnownError<X> {}

/// The known error types, most recently added first.
pub struct KnownErrors<X>(Vec<KnownError<X>>);

impl<X> Clone for KnownErrors<X> {
    fn clone(&self) -> Self {
        KnownErrors(self.0.clone())
    }
}

impl<X: fmt::Debug + fmt::Display> KnownErrors<X> {
    /// These types, the first asked first.
    pub fn new(types: Vec<KnownError<X>>) -> Self {
        KnownErrors(types)
    }

    /// Adds a type, asked before the others.
    pub fn add(&mut self, ty: KnownError<X>) {
        self.0.insert(0, ty);
    }

    /// The event for a response carrying `error`: the real type and chain when the
    /// type is known; otherwise the message, with the type name `Debug` starts with.
    pub fn event(&self, error: &X, status: u16) -> Event {
        self.0
            .iter()
            .find_map(|ty| (ty.event)(error, status))
            .unwrap_or_else(|| {
                // As a `dyn` error, so the type name comes from `Debug`, not `Opaque`.
                error_response_event(&Opaque(error) as &dyn StdError, status)
            })
    }

    /// The error as a `std` error, when its type is known.
    pub fn as_std<'a>(&self, error: &'a X) -> Option<&'a (dyn StdError + 'static)> {
        self.0.iter().find_map(|ty| (ty.as_std)(error))
    }

    /// What the debug page shows of `error`: its chain when its type is known, else
    /// its message.
    pub fn page_debug<'a>(&self, error: &'a X) -> PageDebug<'a> {
        match self.as_std(error) {
            Some(error) => PageDebug::Error(error),
            None => PageDebug::Message(error),
        }
    }
}

/// An error of unknown type, seen as a `std` error with no source.
struct Opaque<'a, X>(&'a X);

impl<X: fmt::Debug> fmt::Debug for Opaque<'_, X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

impl<X: fmt::Display> fmt::Display for Opaque<'_, X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.0, f)
    }
}

impl<X: fmt::Debug + fmt::Display> StdError for Opaque<'_, X> {}
