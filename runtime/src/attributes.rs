//! FlowFile attributes: a shared sorted base plus a short list of changes.
//!
//! Both parts are shared and immutable: cloning an [`Attributes`] is one or
//! two reference-count increments, so forking a FlowFile to several
//! connections or keeping the original for rollback costs next to nothing.
//! A write does not copy the map, nor the changes made before it: it adds
//! one node (key, value, and a link to the older changes) in front of the
//! list. Past [`FOLD_AT`] changes the list is folded into a new base. Keys
//! and values are `Arc<str>`: a processor that sets the same key on every
//! FlowFile builds the key once and shares it.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, Serializer};

pub use crate::attr_str::AttrStr;

/// Changes kept on top of the base before they are folded into a new one.
const FOLD_AT: usize = 8;

/// The attributes of a FlowFile.
#[derive(Clone, Default)]
pub struct Attributes {
    /// Sorted by key, keys unique; shared by clones.
    base: Arc<[(AttrStr, AttrStr)]>,
    /// Changes on top of `base`, newest first; shared by clones.
    changes: Option<Arc<Change>>,
}

/// One change on top of the base.
struct Change {
    key: AttrStr,
    /// `Some` sets, `None` removes.
    value: Option<AttrStr>,
    /// The changes made before this one.
    older: Option<Arc<Change>>,
    /// Changes in the list from this one on (this one included).
    depth: usize,
}

/// The newest change of each key, sorted by key. A list holds at most
/// `FOLD_AT` changes, and `FOLD_AT + 1` for the moment before it is folded.
type Latest<'a> = [Option<(&'a AttrStr, Option<&'a AttrStr>)>; FOLD_AT + 1];

fn find<V>(entries: &[(AttrStr, V)], key: &str) -> Result<usize, usize> {
    entries.binary_search_by(|(k, _)| compare_keys(k, key))
}

/// Orders attribute names as `str::cmp` does (bytewise), eight bytes at a
/// time and inline: names are short and often share a prefix (`syslog.`),
/// where a call to `memcmp` per comparison costs more than the comparing.
#[must_use]
#[inline]
pub fn compare_keys(left: &str, right: &str) -> Ordering {
    let (left, right) = (left.as_bytes(), right.as_bytes());
    let common = left.len().min(right.len());
    let mut at = 0;
    while at + 8 <= common {
        let mut word_l = [0u8; 8];
        let mut word_r = [0u8; 8];
        word_l.copy_from_slice(&left[at..at + 8]);
        word_r.copy_from_slice(&right[at..at + 8]);
        // Big-endian: the first differing byte decides, as bytewise.
        match u64::from_be_bytes(word_l).cmp(&u64::from_be_bytes(word_r)) {
            Ordering::Equal => at += 8,
            other => return other,
        }
    }
    while at < common {
        match left[at].cmp(&right[at]) {
            Ordering::Equal => at += 1,
            other => return other,
        }
    }
    left.len().cmp(&right.len())
}

impl Attributes {
    /// An empty map.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `key`, if set.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.get_shared(key).map(AsRef::as_ref)
    }

    /// The shared value of `key`, if set (clone it to reuse without copying).
    #[must_use]
    pub fn get_shared(&self, key: &str) -> Option<&AttrStr> {
        match self.change_of(key) {
            Some(c) => c.value.as_ref(),
            None => find(&self.base, key).ok().map(|i| &self.base[i].1),
        }
    }

    /// The newest change of `key`, if it was changed.
    fn change_of(&self, key: &str) -> Option<&Change> {
        let mut next = self.changes.as_deref();
        while let Some(c) = next {
            if c.key.as_ref() == key {
                return Some(c);
            }
            next = c.older.as_deref();
        }
        None
    }

    /// Whether `key` is set.
    #[must_use]
    pub fn contains(&self, key: &str) -> bool {
        self.get_shared(key).is_some()
    }

    /// Sets `key` to `value`.
    pub fn insert(&mut self, key: impl Into<AttrStr>, value: impl Into<AttrStr>) {
        self.set(key.into(), Some(value.into()));
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<AttrStr> {
        let old = self.get_shared(key)?.clone();
        // The key is set, so the base or a change holds it: share that one.
        let shared = match self.change_of(key) {
            Some(c) => c.key.clone(),
            None => match find(&self.base, key) {
                Ok(i) => self.base[i].0.clone(),
                Err(_) => AttrStr::from(key),
            },
        };
        self.set(shared, None);
        Some(old)
    }

    /// Records one change in front of the others.
    fn set(&mut self, key: AttrStr, value: Option<AttrStr>) {
        let depth = self.changes.as_ref().map_or(0, |c| c.depth) + 1;
        self.changes = Some(Arc::new(Change {
            key,
            value,
            older: self.changes.take(),
            depth,
        }));
        if depth > FOLD_AT {
            self.fold();
        }
    }

    /// Folds the changes into a new base.
    fn fold(&mut self) {
        let merged: Arc<[(AttrStr, AttrStr)]> = self
            .iter_shared()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.base = merged;
        self.changes = None;
    }

    /// The newest change of each changed key, in key order, and how many.
    fn latest(&self) -> (Latest<'_>, usize) {
        let mut out: Latest<'_> = [None; FOLD_AT + 1];
        let mut n = 0;
        let mut next = self.changes.as_deref();
        while let Some(c) = next {
            let seen = out[..n]
                .iter()
                .flatten()
                .any(|(k, _)| k.as_ref() == c.key.as_ref());
            if !seen && n < out.len() {
                out[n] = Some((&c.key, c.value.as_ref()));
                n += 1;
            }
            next = c.older.as_deref();
        }
        out[..n].sort_by(|a, b| match (a, b) {
            (Some((x, _)), Some((y, _))) => compare_keys(x, y),
            _ => Ordering::Equal,
        });
        (out, n)
    }

    /// Sets every pair of `other`, overwriting.
    pub fn extend(&mut self, other: impl IntoIterator<Item = (AttrStr, AttrStr)>) {
        for (k, v) in other {
            self.insert(k, v);
        }
    }

    /// Iterates in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.iter_shared().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }

    /// Iterates the shared keys and values in key order.
    pub fn iter_shared(&self) -> impl Iterator<Item = (&AttrStr, &AttrStr)> {
        let (latest, len) = self.latest();
        Merge {
            base: &self.base,
            latest,
            at: 0,
            len,
        }
    }

    /// Number of attributes.
    #[must_use]
    pub fn len(&self) -> usize {
        let mut n = self.base.len();
        let (latest, len) = self.latest();
        for (k, v) in latest[..len].iter().flatten() {
            match (find(&self.base, k).is_ok(), v.is_some()) {
                (false, true) => n += 1,
                (true, false) => n -= 1,
                _ => {}
            }
        }
        n
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximate heap size in bytes, used for byte accounting of queues.
    #[must_use]
    pub fn approx_size(&self) -> usize {
        self.iter().map(|(k, v)| k.len() + v.len() + 32).sum()
    }
}

/// The base and the changes merged, in key order.
struct Merge<'a> {
    base: &'a [(AttrStr, AttrStr)],
    latest: Latest<'a>,
    at: usize,
    len: usize,
}

impl<'a> Iterator for Merge<'a> {
    type Item = (&'a AttrStr, &'a AttrStr);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let change = if self.at < self.len {
                self.latest[self.at]
            } else {
                None
            };
            let order = match (self.base.first(), change) {
                (None, None) => return None,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some((b, _)), Some((d, _))) => compare_keys(b, d),
            };
            if order == Ordering::Less {
                let (k, v) = &self.base[0];
                self.base = &self.base[1..];
                return Some((k, v));
            }
            if order == Ordering::Equal {
                self.base = &self.base[1..];
            }
            self.at += 1;
            if let Some((k, Some(v))) = change {
                return Some((k, v));
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.base.len() + self.len - self.at.min(self.len)))
    }
}

impl PartialEq for Attributes {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Attributes {}

impl Attributes {
    /// Takes every pair out of `pairs` (a buffer the caller reuses; its
    /// capacity stays) into one shared map, moved in one allocation. The
    /// last value of a key wins. Pairs already in key order, each key once,
    /// as a parser pushes them, are not sorted: that is checked first.
    pub fn from_drain(pairs: &mut Vec<(AttrStr, AttrStr)>) -> Self {
        if !pairs
            .windows(2)
            .all(|w| compare_keys(&w[0].0, &w[1].0) == Ordering::Less)
        {
            // Reversed, a stable sort puts the last value of a key first
            // among equal keys, and dedup keeps the first.
            pairs.reverse();
            pairs.sort_by(|a, b| compare_keys(&a.0, &b.0));
            pairs.dedup_by(|later, first| later.0 == first.0);
        }
        Self {
            base: pairs.drain(..).collect(),
            changes: None,
        }
    }
}

impl<K: Into<AttrStr>, V: Into<AttrStr>> FromIterator<(K, V)> for Attributes {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut pairs: Vec<(AttrStr, AttrStr)> = iter
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Self::from_drain(&mut pairs)
    }
}

impl fmt::Debug for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Attributes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    proptest::proptest! {
        #[test]
        fn compare_keys_orders_as_str_does(
            a in "(syslog\\.)?[a-z.é]{0,20}",
            b in "(syslog\\.)?[a-z.é]{0,20}",
        ) {
            proptest::prop_assert_eq!(compare_keys(&a, &b), a.as_str().cmp(b.as_str()));
            proptest::prop_assert_eq!(compare_keys(&a, &a), Ordering::Equal);
        }
    }

    #[test]
    fn clone_shares_the_base_and_writes_stay_apart() {
        let mut a: Attributes = [("k", "v"), ("x", "1")].into_iter().collect();
        let b = a.clone();
        a.insert("k", "w");
        assert!(
            Arc::ptr_eq(&a.base, &b.base),
            "a write does not copy the base"
        );
        assert_eq!(b.get("k"), Some("v"));
        assert_eq!(a.get("k"), Some("w"));
        assert_eq!(a.remove("x").as_deref(), Some("1"));
        assert_eq!(b.get("x"), Some("1"));
        assert_eq!(a.get("x"), None);
        assert_eq!(a.len(), 1);
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn removing_a_missing_key_changes_nothing() {
        let mut a: Attributes = [("k", "v")].into_iter().collect();
        assert_eq!(a.remove("nope"), None);
        assert!(a.changes.is_none());
    }

    #[test]
    fn last_value_of_a_key_wins_when_collecting() {
        let a: Attributes = [("b", "1"), ("a", "x"), ("b", "2"), ("b", "3")]
            .into_iter()
            .collect();
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![("a", "x"), ("b", "3")]);
    }

    #[test]
    fn from_drain_empties_the_buffer_and_keeps_the_last_value_of_a_key() {
        let pair = |k: &str, v: &str| (AttrStr::from(k), AttrStr::from(v));
        for input in [
            vec![],
            vec![pair("a", "1"), pair("b", "2"), pair("syslog.x", "3")],
            vec![pair("b", "1"), pair("a", "x"), pair("b", "2")],
            vec![pair("a", "1"), pair("a", "2")],
        ] {
            let want: BTreeMap<String, String> = input
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let mut buffer = input;
            let drained = Attributes::from_drain(&mut buffer);
            assert!(buffer.is_empty());
            assert_eq!(
                drained.iter().collect::<Vec<_>>(),
                want.iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect::<Vec<_>>()
            );
        }
    }

    /// Every operation agrees with a plain BTreeMap, through many folds.
    #[test]
    fn behaves_as_a_sorted_map() {
        let mut model: BTreeMap<String, String> = BTreeMap::new();
        let mut a = Attributes::new();
        let mut seed = 7u64;
        let mut snapshots = Vec::new();
        for step in 0..5000 {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let key = format!("k{}", (seed >> 33) % 24);
            let value = format!("v{step}");
            match (seed >> 20) % 4 {
                0 => {
                    assert_eq!(
                        a.remove(&key).map(|v| v.to_string()),
                        model.remove(&key),
                        "remove {key}"
                    );
                }
                1 if step % 97 == 0 => {
                    snapshots.push((a.clone(), model.clone()));
                }
                _ => {
                    a.insert(key.as_str(), value.as_str());
                    model.insert(key.clone(), value);
                }
            }
            assert_eq!(a.get(&key), model.get(&key).map(String::as_str));
            assert_eq!(a.len(), model.len());
            assert!(a.changes.as_ref().map_or(0, |c| c.depth) <= FOLD_AT);
        }
        let want: Vec<(&str, &str)> = model
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(a.iter().collect::<Vec<_>>(), want);
        // Earlier clones kept their own view.
        for (snap, m) in snapshots {
            let want: Vec<(&str, &str)> = m.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            assert_eq!(snap.iter().collect::<Vec<_>>(), want);
            assert_eq!(snap.len(), m.len());
        }
        let b: Attributes = model
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(a, b, "equality ignores how the map is layered");
    }
}
