use std::collections::BTreeMap;
use std::fmt;

use runtime_actor::{Runtime, RuntimeFactory};

/// In-process runtimes by the name a config's `runtime.name` gives them.
///
/// Config files cannot hold code, so a service registers its runtimes here
/// and [`Pod::from_config`](crate::Pod::from_config) picks one by name.
#[must_use]
pub struct RuntimeRegistry<R> {
    factories: BTreeMap<String, RuntimeFactory<R>>,
}

impl<R: Runtime> RuntimeRegistry<R> {
    /// An empty registry.
    pub fn new() -> Self {
        RuntimeRegistry {
            factories: BTreeMap::new(),
        }
    }

    /// Registers `factory` under `name`, replacing any earlier one.
    pub fn register(mut self, name: impl Into<String>, factory: RuntimeFactory<R>) -> Self {
        self.factories.insert(name.into(), factory);
        self
    }

    /// The factory registered under `name`.
    pub fn get(&self, name: &str) -> Option<&RuntimeFactory<R>> {
        self.factories.get(name)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.factories.keys().map(String::as_str)
    }
}

impl<R: Runtime> Default for RuntimeRegistry<R> {
    fn default() -> Self {
        RuntimeRegistry::new()
    }
}

impl<R> fmt::Debug for RuntimeRegistry<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.factories.keys()).finish()
    }
}
