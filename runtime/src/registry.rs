//! The set of processor types a flow may name.

use std::sync::Arc;

use crate::processor::ProcessorType;

/// Maps `type:` names to processor types. One list feeds validation, the
/// `sluice processors` listing, the docs and the UI.
#[derive(Clone, Default)]
pub struct Registry {
    types: Vec<Arc<dyn ProcessorType>>,
}

impl Registry {
    /// A registry of `types`.
    #[must_use]
    pub fn new(types: Vec<Arc<dyn ProcessorType>>) -> Self {
        Self { types }
    }

    /// Adds a type.
    pub fn register(&mut self, t: Arc<dyn ProcessorType>) {
        self.types.push(t);
    }

    /// The type named `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Arc<dyn ProcessorType>> {
        self.types.iter().find(|t| t.name() == name)
    }

    /// Every type, in registration order.
    #[must_use]
    pub fn types(&self) -> &[Arc<dyn ProcessorType>] {
        &self.types
    }

    /// The closest known name to `name`, for "did you mean" hints.
    #[must_use]
    pub fn suggest(&self, name: &str) -> Option<&'static str> {
        suggest(name, self.types.iter().map(|t| t.name()))
    }
}

/// The candidate closest to `name` if it is close enough to be a likely typo.
pub fn suggest<'a, I: IntoIterator<Item = &'a str>>(name: &str, candidates: I) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            let cl = c.to_ascii_lowercase();
            let score = if cl == lower {
                1.0
            } else {
                strsim::jaro_winkler(&lower, &cl)
            };
            (score, c)
        })
        .filter(|(s, _)| *s >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}
