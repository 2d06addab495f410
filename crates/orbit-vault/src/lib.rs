//! Orbit's secrets vault: secrets stored encrypted with AES-256-GCM
//! envelope encryption, one data key per workspace, so that guests can use
//! credentials by name without ever seeing them.
//!
//! - [`MasterKey`]: the root key, from `ORBIT_MASTER_KEY` or a 0600 key
//!   file ([`MasterKey::from_env_or_file`]).
//! - [`Vault`]: the redb-backed store: [`Vault::set`], [`Vault::list`],
//!   [`Vault::remove`], [`Vault::meta`], [`Vault::resolve`],
//!   [`Vault::rotate`], [`Vault::retire`], [`Vault::status`].
//! - [`SecretResolver`]: the narrow interface the fetch primitive uses.
//! - [`HostBinding`], [`Placement`], [`SecretMeta`]: where a secret may go
//!   and how it is put into a request.
//!
//! # Key hierarchy
//! ```text
//! master key (32 bytes, never stored in the vault)
//!   └─ HKDF-SHA256 ─> KEK kek-v{n}            (per version; rotate/retire; salt holds the vault id)
//!        └─ AES-256-GCM wrap ─> DEK dek-…     (per workspace; replaced at the encryption limit;
//!             │                                AAD: format | vault id | workspace | DEK id | KEK id)
//!             └─ AES-256-GCM ─> secret value  (AAD: format | workspace | name | DEK id | metadata)
//! ```
//! The vault id is 16 random bytes made with the vault file, so vault
//! files sharing a master key derive different KEKs and cannot exchange
//! wrapped keys or secrets.
//! Every encryption uses a fresh random 96-bit nonce and is counted; a key
//! is replaced once it reaches [`Vault::ENCRYPTION_LIMIT`] (2^31)
//! encryptions, well under the 2^32 of NIST SP 800-38D.
//!
//! # Plaintext in memory
//! Zeroization covers the vault's own buffers only: [`SecretValue`],
//! [`MasterKey`], derived and unwrapped keys, and the vault's encryption
//! and decryption scratch buffers are wiped when dropped. Once a caller
//! exposes a value ([`SecretValue::expose`]) and copies it — into an HTTP
//! header, a URL, a request body, a log-scrubbing pattern — that copy is
//! outside the vault's control and is not zeroized by it.

mod binding;
mod crypto;
mod error;
mod key;
mod vault;

pub use binding::{FORBIDDEN_HEADERS, HostBinding, Placement, SecretMeta};
pub use error::VaultError;
pub use key::{MasterKey, MasterKeySource, SecretValue};
pub use vault::{
    DataKeyStatus, KekStatus, RotationReport, SecretResolver, SecretUse, Vault, VaultOptions, VaultStatus, origin_of,
};
