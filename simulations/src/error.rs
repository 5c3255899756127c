//! What can go wrong when loading or running a scenario.

use std::path::PathBuf;

/// Errors from loading, validating, running or writing out a scenario.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The scenario file could not be read or an output could not be written.
    #[error("i/o on {path}: {source}")]
    Io {
        /// File or directory concerned.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The scenario is not valid TOML or does not match the scenario format.
    #[error("scenario format: {0}")]
    Format(String),
    /// The scenario parses but its values make no sense.
    #[error("invalid scenario: {0}")]
    Invalid(String),
    /// A `--param key=values` sweep argument is malformed or names no field.
    #[error("sweep parameter: {0}")]
    Sweep(String),
    /// JSON serialisation failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// A plot could not be drawn.
    #[error("plot: {0}")]
    Plot(String),
}

impl SimError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SimError::Io {
            path: path.into(),
            source,
        }
    }
}
