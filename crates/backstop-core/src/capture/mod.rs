//! What an error or panic carries: the panic hook and its details, stack traces,
//! grouping (fingerprints), and the trace a request continues.

pub(crate) mod error;
pub mod fingerprint;
pub(crate) mod panic;
pub(crate) mod stacktrace;
pub(crate) mod trace;
