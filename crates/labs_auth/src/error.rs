//! The error of a key setting, shared by the key configuration and each kind of key (its own
//! module so that `config`, which builds the keys, and the keys, which parse their settings,
//! both use it without using each other).

/// A key setting that cannot be used, naming its variable.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{variable}: {why}")]
pub struct KeyError {
    pub variable: &'static str,
    pub why: String,
}

impl KeyError {
    pub fn new(variable: &'static str, why: String) -> Self {
        Self { variable, why }
    }
}
