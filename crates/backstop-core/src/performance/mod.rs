//! Performance monitoring: the `tracing` layer, the spans a request records, database
//! spans (by hand, from diesel), outgoing HTTP calls and cache operations, SQL
//! normalisation and the performance-problem detectors.

pub mod cache;
pub(crate) mod db;
pub mod detect;
#[cfg(feature = "diesel")]
pub mod diesel;
pub mod outgoing;
#[cfg(feature = "reqwest")]
pub mod reqwest;
pub(crate) mod spans;
pub mod sql;
#[cfg(feature = "tower")]
pub mod tower;
pub mod tracing;
