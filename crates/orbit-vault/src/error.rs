//! The vault's error type. No variant ever carries a secret value or key
//! material; messages name secrets, workspaces and paths only.

use std::path::PathBuf;

/// Why a vault operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// A secret name was not 1 to 128 bytes of `[A-Za-z0-9_.-]`.
    #[error("invalid secret name: {0}")]
    InvalidSecretName(&'static str),

    /// A secret was stored without any host binding; every secret must be
    /// bound to at least one origin.
    #[error("a secret must be bound to at least one host")]
    NoHosts,

    /// A host binding (or the URL it was parsed from) was malformed: bad
    /// scheme, host, port, method or path prefix.
    #[error("invalid host binding `{input}`: {reason}")]
    InvalidHost {
        /// The URL or host given (never a secret).
        input: String,
        /// What was wrong with it.
        reason: &'static str,
    },

    /// A placement was malformed: bad header or parameter name, or a
    /// template without exactly one `{}`.
    #[error("invalid placement: {0}")]
    InvalidPlacement(&'static str),

    /// The secret value was empty, or held characters that cannot go where
    /// its placement puts it (e.g. CR/LF in a header). The value itself is
    /// never included.
    #[error("invalid secret value: {0}")]
    InvalidValue(&'static str),

    /// The secret value was longer than [`crate::Vault::MAX_VALUE_LEN`] bytes.
    #[error("secret value is {len} bytes; the limit is {max} bytes")]
    ValueTooLarge {
        /// The value's length, in bytes.
        len: usize,
        /// The limit, in bytes.
        max: usize,
    },

    /// The master key given in `ORBIT_MASTER_KEY` or the key file was not
    /// base64 of 32 bytes or 64 hex characters.
    #[error("invalid master key: {0}")]
    InvalidMasterKey(&'static str),

    /// The master key file is readable or writable by group or others;
    /// it must be mode 0600 (or stricter).
    #[error("master key file {path} has mode {mode:o}; it must not be accessible by group or others (chmod 600)")]
    InsecureKeyFile {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// The master key file (or its directory) could not be read or written.
    #[error("master key file {path}: {source}")]
    KeyFile {
        /// The key file or directory.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The operating system's random number generator failed.
    #[error("the OS random number generator failed")]
    Random,

    /// The vault file was created with a different master key: the stored
    /// key-check value for the current key-encryption key does not match.
    #[error("the master key does not match this vault (wrong ORBIT_MASTER_KEY or key file?)")]
    WrongMasterKey,

    /// A secret failed to authenticate and decrypt: its record was
    /// tampered with, moved to another name or workspace, or its data key
    /// cannot be unwrapped. No partial plaintext is ever returned.
    #[error("secret `{name}` in workspace `{workspace}` failed to decrypt (tampered, moved, or wrong key)")]
    Decrypt {
        /// The workspace the record was read from.
        workspace: String,
        /// The name the record was read under.
        name: String,
    },

    /// A data key failed to unwrap under its key-encryption key (its
    /// record was tampered with). Reported by writes and rotation; reads
    /// report [`VaultError::Decrypt`] instead.
    #[error("data key `{id}` failed to unwrap (tampered record)")]
    UnwrapDataKey {
        /// The data key's id.
        id: String,
    },

    /// A stored record could not be parsed at all (its framing is broken).
    #[error("vault record is corrupt: {0}")]
    Corrupt(String),

    /// A stored record or vault file uses a format version this build does
    /// not understand.
    #[error("unsupported vault format version {0}")]
    UnsupportedFormat(u32),

    /// No key-encryption key with this version exists (or it was retired).
    #[error("no usable key-encryption key with version {0}")]
    UnknownKeyVersion(u32),

    /// The current key-encryption key cannot be retired; rotate first.
    #[error("key-encryption key version {0} is current; rotate before retiring it")]
    RetireCurrent(u32),

    /// A key-encryption key version still wraps data keys and cannot be
    /// retired until they are re-wrapped (run a rotation).
    #[error("key-encryption key version {version} still wraps {deks} data key(s)")]
    KeyInUse {
        /// The version asked to retire.
        version: u32,
        /// How many data keys are still wrapped by it.
        deks: usize,
    },

    /// The redb database failed (open, transaction, table, storage or
    /// commit error).
    #[error("vault storage: {0}")]
    Storage(#[from] redb::Error),

    /// A use of a secret could not be written to the audit trail (from a
    /// [`SecretResolver::record_use`](crate::SecretResolver::record_use)
    /// that keeps one). The text names no value.
    #[error("audit trail: {0}")]
    Audit(String),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for VaultError {
            fn from(e: $t) -> Self {
                VaultError::Storage(e.into())
            }
        }
    )*};
}

from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);
