//! Storage errors. Any of them stops the writer: the API answers UNAVAILABLE
//! rather than let memory and disk diverge (SPEC §15).

/// What went wrong underneath.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// sled or the file system failed.
    #[error("storage I/O failed: {0}")]
    Io(String),
    /// A record failed its format or checksum check.
    #[error("record {key} is damaged: {what}")]
    Corrupt {
        /// The key, readable.
        key: String,
        /// What is wrong.
        what: String,
    },
    /// The recovered state breaks an invariant.
    #[error("recovered state is inconsistent: {0}")]
    Inconsistent(String),
    /// A value could not be serialized (a bug).
    #[error("could not encode a record: {0}")]
    Encode(String),
    /// An earlier failure stopped the writer.
    #[error("storage stopped after an earlier failure: {0}")]
    Stopped(String),
    /// A fault injected by a test.
    #[error("injected fault: {0}")]
    Injected(&'static str),
}

impl From<sled::Error> for StorageError {
    fn from(e: sled::Error) -> Self {
        StorageError::Io(e.to_string())
    }
}

impl From<std::io::Error> for StorageError {
    fn from(e: std::io::Error) -> Self {
        StorageError::Io(e.to_string())
    }
}
