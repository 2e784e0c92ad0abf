//! Sharing repeated attribute values.
//!
//! Syslog from a fleet repeats itself: a few hundred host names, a few dozen
//! application names, the same structured-data keys. An [`Interner`] hands
//! out one shared [`AttrStr`] per distinct text, so a message costs a hash
//! lookup instead of an allocation for each such value, and FlowFiles that
//! name the same host point at one string (which stays in cache for the
//! processors downstream).
//!
//! It is bounded: past [`Interner::MAX`] distinct values it starts over, so a
//! sender that makes up a new host name per message costs memory of at most
//! that many strings. The strings it hands out are constants while the
//! process's budget for them lasts ([`AttrStr::lasting`]): no reference count
//! moves between the thread that makes a FlowFile and the one that drops it.
//! Past the budget they are shared strings, as before.

use std::collections::HashSet;

use sluice_runtime::AttrStr;

/// Hands out shared copies of repeated strings; see the module docs.
#[derive(Debug, Default)]
pub struct Interner {
    values: HashSet<AttrStr, foldhash::fast::RandomState>,
}

impl Interner {
    /// Distinct values kept before the set starts over.
    pub const MAX: usize = 4096;
    /// Longer values are not kept (a long text rarely repeats).
    pub const MAX_LEN: usize = 128;

    /// A shared string equal to `text`.
    pub fn get(&mut self, text: &str) -> AttrStr {
        if text.len() > Self::MAX_LEN {
            return AttrStr::from(text);
        }
        if let Some(v) = self.values.get(text) {
            return v.clone();
        }
        if self.values.len() >= Self::MAX {
            self.values.clear();
        }
        let v = AttrStr::lasting(text).unwrap_or_else(|| AttrStr::from(text));
        self.values.insert(v.clone());
        v
    }

    /// How many distinct values are kept now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.values.len()
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn equal_texts_share_one_string() {
        let mut i = Interner::default();
        let a = i.get("web-01");
        let b = i.get(&String::from("web-01"));
        assert!(AttrStr::ptr_eq(&a, &b));
        assert_eq!(&*a, "web-01");
        assert!(!AttrStr::ptr_eq(&a, &i.get("web-02")));
        assert_eq!(i.len(), 2);
    }

    #[test]
    fn bounded_and_long_values_are_not_kept() {
        let mut i = Interner::default();
        for n in 0..Interner::MAX * 3 {
            assert_eq!(&*i.get(&format!("host-{n}")), format!("host-{n}"));
            assert!(i.len() <= Interner::MAX);
        }
        let long = "x".repeat(Interner::MAX_LEN + 1);
        let before = i.len();
        assert_eq!(&*i.get(&long), long);
        assert_eq!(i.len(), before);
    }
}
