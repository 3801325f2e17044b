//! The Backstop demo.
fn main() {}
