//! FlowFile attributes: a copy-on-write map of shared strings.
//!
//! Cloning an [`Attributes`] is one reference-count increment, so forking a
//! FlowFile to several connections or keeping the original for rollback costs
//! nothing until somebody writes. Keys and values are `Arc<str>`: a processor
//! that sets the same key on every FlowFile builds the key once and shares it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, Serializer};

/// A shared, immutable string used for attribute keys and values.
pub type AttrStr = Arc<str>;

/// The attributes of a FlowFile.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Attributes(Arc<BTreeMap<AttrStr, AttrStr>>);

impl Attributes {
    /// An empty map.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `key`, if set.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(AsRef::as_ref)
    }

    /// The shared value of `key`, if set (clone it to reuse without copying).
    #[must_use]
    pub fn get_shared(&self, key: &str) -> Option<&AttrStr> {
        self.0.get(key)
    }

    /// Whether `key` is set.
    #[must_use]
    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// Sets `key` to `value`, copying the map first only if it is shared.
    pub fn insert(&mut self, key: impl Into<AttrStr>, value: impl Into<AttrStr>) {
        Arc::make_mut(&mut self.0).insert(key.into(), value.into());
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<AttrStr> {
        if !self.0.contains_key(key) {
            return None;
        }
        Arc::make_mut(&mut self.0).remove(key)
    }

    /// Sets every pair of `other`, overwriting.
    pub fn extend(&mut self, other: impl IntoIterator<Item = (AttrStr, AttrStr)>) {
        let map = Arc::make_mut(&mut self.0);
        for (k, v) in other {
            map.insert(k, v);
        }
    }

    /// Iterates in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }

    /// Iterates the shared keys and values in key order.
    pub fn iter_shared(&self) -> impl Iterator<Item = (&AttrStr, &AttrStr)> {
        self.0.iter()
    }

    /// Number of attributes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Approximate heap size in bytes, used for byte accounting of queues.
    #[must_use]
    pub fn approx_size(&self) -> usize {
        self.0.iter().map(|(k, v)| k.len() + v.len() + 32).sum()
    }
}

impl<K: Into<AttrStr>, V: Into<AttrStr>> FromIterator<(K, V)> for Attributes {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(Arc::new(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        ))
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

    #[test]
    fn clone_is_shared_until_written() {
        let mut a: Attributes = [("k", "v")].into_iter().collect();
        let b = a.clone();
        assert!(Arc::ptr_eq(&a.0, &b.0));
        a.insert("k", "w");
        assert!(!Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(b.get("k"), Some("v"));
        assert_eq!(a.get("k"), Some("w"));
    }

    #[test]
    fn removing_a_missing_key_does_not_copy() {
        let mut a: Attributes = [("k", "v")].into_iter().collect();
        let b = a.clone();
        assert_eq!(a.remove("nope"), None);
        assert!(Arc::ptr_eq(&a.0, &b.0));
    }
}
