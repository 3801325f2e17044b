//! SQL normalisation: the same query with different literals gets one normal form and
//! one stable group hash, so spans group and detectors can count repeats.
//!
//! (Being written; see the module's tests for the contract.)

/// A normalised statement and its group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedSql {
    /// The normal form (`SELECT * FROM posts WHERE user_id = ?`).
    pub text: String,
    /// A stable hash of `text` (xxh3-64), the query group.
    pub group: u64,
}

/// Normalises `sql` for the database system `system` (`db.system`: `postgresql`,
/// `mysql`, `sqlite`, ...).
pub fn normalize(sql: &str, system: Option<&str>) -> NormalizedSql {
    let _ = system;
    let text = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    let group = xxhash_rust::xxh3::xxh3_64(text.as_bytes());
    NormalizedSql { text, group }
}

/// The group hash as written in span data and problems: 16 lowercase hex digits.
pub fn group_hex(group: u64) -> String {
    format!("{group:016x}")
}
