//! [`AttrStr`]: the string type of attribute keys and values.
//!
//! Most of a FlowFile's attribute names, and many of its values, are the
//! same on every FlowFile: `syslog.severity`, `route.name`, `err`. Shared as
//! `Arc<str>`, each FlowFile that carries one increments a reference count
//! when it is made and decrements it when it is dropped, and these happen on
//! different worker threads at the same time (the source makes FlowFiles
//! while the sink drops older ones): the counters' cache lines travel
//! between the cores several times per FlowFile. On the 2-core benchmark
//! machine a contended increment costs 40-100 ns against 2 ns uncontended.
//!
//! So an `AttrStr` is either a shared heap string (`Arc<str>`, for values
//! that come from the data) or a constant that is never freed and has no
//! count: a `&'static str` of the program, or a string of the flow's
//! configuration made constant once by [`AttrStr::constant`] (kept in a
//! process-wide set, so reloading a flow does not add copies). Cloning a
//! constant copies two words. Both kinds compare, hash and order as the
//! text they hold, and an `AttrStr` is 16 bytes either way.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::{Arc, LazyLock};

use parking_lot::Mutex;

/// A string used for attribute keys and values: shared, or constant.
#[derive(Clone)]
pub struct AttrStr(Repr);

#[derive(Clone)]
enum Repr {
    Shared(Arc<str>),
    /// Through a second reference, so the enum fits in two words.
    Constant(&'static &'static str),
}

/// Strings made constant so far (see [`AttrStr::constant`] and
/// [`AttrStr::lasting`]).
static CONSTANTS: LazyLock<Mutex<Constants>> = LazyLock::new(|| Mutex::new(Constants::default()));

#[derive(Default)]
struct Constants {
    texts: HashMap<&'static str, &'static &'static str>,
    /// Bytes taken by texts that came from data ([`AttrStr::lasting`]).
    from_data: usize,
}

impl Constants {
    fn add(&mut self, s: &str) -> &'static &'static str {
        let text: &'static str = Box::leak(Box::from(s));
        let c: &'static &'static str = Box::leak(Box::new(text));
        self.texts.insert(text, c);
        c
    }
}

impl AttrStr {
    /// A constant of the program (`static NAME: &str = "...";` then
    /// `AttrStr::from_static(&NAME)`): no allocation, no reference count.
    #[must_use]
    pub const fn from_static(s: &'static &'static str) -> Self {
        Self(Repr::Constant(s))
    }

    /// `s` as a constant: no reference count to touch when it is cloned or
    /// dropped. For names and values fixed by a flow's configuration or by
    /// code (a processor's attribute names, a route's name), which are few:
    /// each distinct text is stored once for the life of the process, so do
    /// not use it for text that comes from the data.
    #[must_use]
    pub fn constant(s: &str) -> Self {
        let mut constants = CONSTANTS.lock();
        let c = match constants.texts.get(s) {
            Some(c) => *c,
            None => constants.add(s),
        };
        Self(Repr::Constant(c))
    }

    /// Bytes of text from data that [`AttrStr::lasting`] makes constant, for
    /// the whole process: past it, such text stays a shared string.
    pub const LASTING_BUDGET: usize = 4 << 20;

    /// `s` as a constant if it is one already or if the process's budget
    /// for text from data ([`Self::LASTING_BUDGET`], counting what is stored
    /// per text) has room; `None` otherwise. For values that repeat across
    /// FlowFiles but come from the data (host names, sender addresses): a
    /// fleet's few thousand names become constants, and a sender that makes
    /// up a new name per message costs at most the budget, once.
    #[must_use]
    pub fn lasting(s: &str) -> Option<Self> {
        // The text, its `&str` and the map entry.
        let cost = s.len() + 16 + 32;
        let mut constants = CONSTANTS.lock();
        if let Some(c) = constants.texts.get(s) {
            return Some(Self(Repr::Constant(c)));
        }
        if constants.from_data + cost > Self::LASTING_BUDGET {
            return None;
        }
        constants.from_data += cost;
        Some(Self(Repr::Constant(constants.add(s))))
    }

    /// The text.
    #[must_use]
    // On every path that reads an attribute (sorting, searching, writing).
    #[allow(clippy::inline_always)]
    #[inline(always)]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Shared(s) => s,
            Repr::Constant(s) => s,
        }
    }

    /// Whether both are the same string in memory (not only equal text).
    #[must_use]
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        std::ptr::eq(a.as_str(), b.as_str())
    }

    /// Whether this is a constant (no reference count).
    #[must_use]
    pub fn is_constant(&self) -> bool {
        matches!(self.0, Repr::Constant(_))
    }
}

impl Default for AttrStr {
    fn default() -> Self {
        Self::from_static(&"")
    }
}

impl Deref for AttrStr {
    type Target = str;
    #[allow(clippy::inline_always)]
    #[inline(always)]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for AttrStr {
    #[inline]
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for AttrStr {
    #[inline]
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for AttrStr {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for AttrStr {}

impl PartialOrd for AttrStr {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for AttrStr {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for AttrStr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for AttrStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for AttrStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl From<&str> for AttrStr {
    fn from(s: &str) -> Self {
        Self(Repr::Shared(Arc::from(s)))
    }
}

impl From<String> for AttrStr {
    fn from(s: String) -> Self {
        Self(Repr::Shared(Arc::from(s)))
    }
}

impl From<std::borrow::Cow<'_, str>> for AttrStr {
    fn from(s: std::borrow::Cow<'_, str>) -> Self {
        Self::from(s.as_ref())
    }
}

impl serde::Serialize for AttrStr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_words_either_way() {
        assert_eq!(std::mem::size_of::<AttrStr>(), 16);
    }

    #[test]
    fn constants_and_shared_strings_are_equal_as_text() {
        static NAME: &str = "syslog.severity";
        let a = AttrStr::from_static(&NAME);
        let b = AttrStr::from("syslog.severity");
        let c = AttrStr::constant("syslog.severity");
        assert!(a.is_constant() && c.is_constant() && !b.is_constant());
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert_eq!(a.cmp(&b), Ordering::Equal);
        let hash = |s: &AttrStr| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            s.hash(&mut h);
            h.finish()
        };
        assert_eq!(hash(&a), hash(&b));
        let (shared, constant) = (AttrStr::from("a"), AttrStr::constant("b"));
        assert!(shared < constant);
        assert_eq!(format!("{a} {b:?}"), "syslog.severity \"syslog.severity\"");
    }

    #[test]
    fn lasting_constants_stop_at_the_budget() {
        let first = AttrStr::lasting("host-lasting-test-0").expect("room");
        assert!(first.is_constant());
        assert!(AttrStr::ptr_eq(
            &first,
            &AttrStr::lasting("host-lasting-test-0").expect("known")
        ));
        // Fill the budget (other tests may have used a little of it).
        let mut made = 0usize;
        let mut n = 1;
        while let Some(c) = AttrStr::lasting(&format!("host-lasting-test-{n}")) {
            assert!(c.is_constant());
            made += 1;
            n += 1;
            assert!(
                made <= AttrStr::LASTING_BUDGET / 48,
                "the budget is not enforced"
            );
        }
        assert!(made > AttrStr::LASTING_BUDGET / 100, "only {made} made");
        // Known texts are still handed out; configured ones still made.
        assert!(AttrStr::lasting("host-lasting-test-0").is_some());
        assert!(AttrStr::constant("configured-after-the-budget").is_constant());
    }

    #[test]
    fn a_configured_constant_is_stored_once() {
        let first = AttrStr::constant("route.name.attr-str-test");
        let again = AttrStr::constant(&String::from("route.name.attr-str-test"));
        assert!(AttrStr::ptr_eq(&first, &again));
        assert!(!AttrStr::ptr_eq(
            &first,
            &AttrStr::from("route.name.attr-str-test")
        ));
    }
}
