//! The error type of the crate.
//!
//! Messages carry enough context (provider, key reference, operation) to act on,
//! and never any key material or credential.

/// Everything that can go wrong in key management.
///
/// Only [`KeyError::Unavailable`] is worth retrying (see [`KeyError::is_retryable`]);
/// every other variant is permanent for the given inputs.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum KeyError {
    /// The KMS could not be reached or answered with a transient failure
    /// (connection refused, timeout, 5xx, sealed, rate limited), and bounded
    /// retries with backoff did not help. Retryable.
    #[error(
        "key provider `{provider}` unavailable during {operation} after {attempts} attempt(s): {reason}"
    )]
    Unavailable {
        /// Provider name.
        provider: String,
        /// What was attempted (`unwrap`, `rewrap`, ...).
        operation: &'static str,
        /// How many attempts were made.
        attempts: u32,
        /// The last failure seen.
        reason: String,
    },

    /// The KEK (or the KEK version the record needs) was revoked, deleted or
    /// retired: the record can no longer be unwrapped. Permanent.
    #[error("KEK `{key_ref}` of provider `{provider}` is revoked, deleted or retired: {reason}")]
    Revoked {
        /// Provider name.
        provider: String,
        /// The KEK reference.
        key_ref: String,
        /// What the provider said.
        reason: String,
    },

    /// The unwrapped key does not match the commitment stored in the record:
    /// a wrong or substituted key. The key was not returned.
    #[error(
        "key commitment mismatch: provider `{provider}` returned a key for `{key_ref}` that is not the committed TMK (wrong or substituted key)"
    )]
    Commitment {
        /// Provider name.
        provider: String,
        /// The KEK reference.
        key_ref: String,
    },

    /// Authenticated decryption failed or a record is internally inconsistent:
    /// the data was modified, or it was sealed under another key.
    #[error(
        "{what} failed authentication or is inconsistent (tampered, or sealed under another key): {reason}"
    )]
    Tampered {
        /// What was being opened.
        what: String,
        /// Details.
        reason: String,
    },

    /// A customer-supplied key (SSE-C) does not match.
    #[error("the supplied key does not match the {what}")]
    WrongKey {
        /// What it was checked against.
        what: &'static str,
    },

    /// A provider, key, or key version does not exist.
    #[error("not found: {what}")]
    NotFound {
        /// What is missing.
        what: String,
    },

    /// The KMS refused the credentials (expired or revoked token, missing policy).
    #[error("key provider `{provider}` denied access: {reason}")]
    Denied {
        /// Provider name.
        provider: String,
        /// What the provider said.
        reason: String,
    },

    /// Invalid configuration or argument.
    #[error("key configuration error: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },

    /// A stored record or blob cannot be parsed.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What could not be parsed.
        what: &'static str,
        /// Why.
        reason: String,
    },

    /// The KMS answered something this client does not understand.
    #[error("unexpected answer from key provider `{provider}` during {operation}: {reason}")]
    Protocol {
        /// Provider name.
        provider: String,
        /// What was attempted.
        operation: &'static str,
        /// Details.
        reason: String,
    },

    /// The encryption epoch counter cannot advance further.
    #[error("encryption epoch {current} is the last one (u32 overflow)")]
    EpochOverflow {
        /// The current epoch.
        current: u32,
    },

    /// A local file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, and on which path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// An error raised by a [`crate::rotation::WrappedKeyStore`] implementation.
    #[error("wrapped key store: {reason}")]
    Store {
        /// Details from the store.
        reason: String,
        /// Whether the store itself says a retry may succeed.
        retryable: bool,
    },
}

impl KeyError {
    /// True for transient failures (KMS outage, retryable store error): the same
    /// call may succeed later. False for everything permanent.
    pub fn is_retryable(&self) -> bool {
        match self {
            KeyError::Unavailable { .. } => true,
            KeyError::Store { retryable, .. } => *retryable,
            _ => false,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        KeyError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn config(reason: impl Into<String>) -> Self {
        KeyError::Config {
            reason: reason.into(),
        }
    }
}
