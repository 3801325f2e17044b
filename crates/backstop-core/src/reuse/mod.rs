//! Allocator-aware machinery: memory the request threads and the worker pass back and
//! forth instead of allocating and freeing it across threads.

pub(crate) mod intern;
