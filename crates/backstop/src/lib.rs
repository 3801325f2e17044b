#![doc = include_str!("../../../README.md")]

pub use backstop_core::*;
