//! Performance monitoring: the `tracing` layer, the spans a request records, database
//! spans (by hand, from diesel), SQL normalisation and the performance-problem
//! detectors.

pub(crate) mod db;
pub mod detect;
#[cfg(feature = "diesel")]
pub mod diesel;
pub(crate) mod spans;
pub mod sql;
pub mod tracing;
