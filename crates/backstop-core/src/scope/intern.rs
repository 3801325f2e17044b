//! Statement texts, kept once per process.
//!
//! An application runs the same few hundred statements over and over; copying each
//! one into a new `String` for every query span costs the request thread an
//! allocation (and the worker a free) per query. The first [`BUDGET`] bytes of
//! distinct texts, each at most [`MAX_LEN`] bytes, are instead kept for the life of
//! the process and shared as `&'static str`. A per-thread cache in front of the shared
//! table makes a repeat a hash and a compare, with no lock.
//!
//! Past the budget (an application that inlines its values into the SQL text, say),
//! texts are copied as before: [`Text::Owned`].

use std::cell::RefCell;
use std::collections::HashSet;
use std::ops::Deref;
use std::sync::Mutex;

/// Copies `text` into `into`, cut to at most `max` bytes (plus the `…` that marks a cut).
pub(crate) fn copy_bounded(into: &mut String, text: &str, max: usize) {
    into.clear();
    if text.len() <= max {
        into.push_str(text);
        return;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    into.push_str(&text[..end]);
    into.push('…');
}

/// `text`, cut to at most `max` bytes (see [`copy_bounded`]).
pub(crate) fn bounded(text: &str, max: usize) -> String {
    let mut out = String::new();
    copy_bounded(&mut out, text, max);
    out
}

/// The most bytes of distinct texts kept for the life of the process.
pub(crate) const BUDGET: usize = 1 << 20;

/// The longest text kept; longer ones are copied each time.
pub(crate) const MAX_LEN: usize = 2048;

/// Slots in each thread's cache (a power of two).
const SLOTS: usize = 256;

/// A span's text: kept once for the process, or this span's own copy.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Text {
    Shared(&'static str),
    Owned(String),
}

impl Text {
    /// `text`, shared when it is short enough and the budget allows, else copied and
    /// cut to `max` bytes (see [`bounded`]).
    pub(crate) fn new(text: &str, max: usize) -> Text {
        match intern(text) {
            Some(shared) => Text::Shared(shared),
            None => Text::Owned(bounded(text, max)),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            Text::Shared(text) => text,
            Text::Owned(text) => text,
        }
    }
}

impl Default for Text {
    fn default() -> Self {
        Text::Shared("")
    }
}

impl Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl From<String> for Text {
    fn from(text: String) -> Self {
        Text::Owned(text)
    }
}

/// The texts kept so far, and their total length.
#[derive(Default)]
struct Table {
    texts: HashSet<&'static str>,
    bytes: usize,
}

static TABLE: Mutex<Option<Table>> = Mutex::new(None);

thread_local! {
    /// Recently seen texts, by their hash's low bits.
    static CACHE: RefCell<[(u64, &'static str); SLOTS]> = const { RefCell::new([(0, ""); SLOTS]) };
}

/// The process's copy of `text`, or `None` when it is too long or the budget is spent.
pub(crate) fn intern(text: &str) -> Option<&'static str> {
    if text.len() > MAX_LEN {
        return None;
    }
    let hash = xxhash_rust::xxh3::xxh3_64(text.as_bytes());
    let slot = hash as usize & (SLOTS - 1);
    let cached = CACHE.with(|cache| {
        let cache = cache.try_borrow().ok()?;
        let (h, kept) = cache[slot];
        (h == hash && kept == text).then_some(kept)
    });
    if cached.is_some() {
        return cached;
    }
    let kept = shared(text)?;
    CACHE.with(|cache| {
        if let Ok(mut cache) = cache.try_borrow_mut() {
            cache[slot] = (hash, kept);
        }
    });
    Some(kept)
}

/// Looks `text` up in the shared table, adding it while the budget lasts.
fn shared(text: &str) -> Option<&'static str> {
    let mut table = TABLE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    table
        .get_or_insert_with(Table::default)
        .get_or_add(text, BUDGET)
}

impl Table {
    fn get_or_add(&mut self, text: &str, budget: usize) -> Option<&'static str> {
        if let Some(kept) = self.texts.get(text) {
            return Some(kept);
        }
        if self.bytes + text.len() > budget {
            return None;
        }
        let kept: &'static str = Box::leak(text.to_owned().into_boxed_str());
        self.bytes += kept.len();
        self.texts.insert(kept);
        Some(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_text_is_kept_once() {
        let a = intern("SELECT 1 FROM intern_test_a").unwrap();
        let b = intern(&String::from("SELECT 1 FROM intern_test_a")).unwrap();
        assert!(std::ptr::eq(a, b));
        // From another thread (an empty cache), the same copy.
        let c = std::thread::spawn(|| intern("SELECT 1 FROM intern_test_a").unwrap())
            .join()
            .unwrap();
        assert!(std::ptr::eq(a, c));
    }

    #[test]
    fn texts_that_share_a_cache_slot_stay_apart() {
        // Far more texts than slots: every lookup still returns its own text.
        let texts: Vec<String> = (0..4 * SLOTS)
            .map(|i| format!("SELECT {i} FROM intern_test_b"))
            .collect();
        for _ in 0..2 {
            for text in &texts {
                assert_eq!(intern(text), Some(text.as_str()));
            }
        }
    }

    #[test]
    fn past_the_budget_texts_are_not_kept() {
        let mut table = Table::default();
        assert!(table.get_or_add("SELECT 1", 16).is_some());
        assert!(table.get_or_add("SELECT 22", 16).is_none());
        // What is kept stays available.
        assert_eq!(table.get_or_add("SELECT 1", 16), Some("SELECT 1"));
        assert_eq!(table.bytes, 8);
    }

    #[test]
    fn long_texts_are_copied_and_cut() {
        let long = "x".repeat(MAX_LEN + 1);
        assert_eq!(intern(&long), None);
        let text = Text::new(&long, 100);
        assert!(matches!(text, Text::Owned(_)));
        assert!(text.starts_with("xxx") && text.ends_with('…'));
    }
}
