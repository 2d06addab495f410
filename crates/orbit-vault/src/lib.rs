//! Orbit's secrets vault: secrets stored encrypted with AES-256-GCM
//! envelope encryption, one data key per workspace, so that guests can use
//! credentials by name without ever seeing them.
//!
//! - [`MasterKey`]: the root key, from `ORBIT_MASTER_KEY` or a 0600 key
//!   file ([`MasterKey::from_env_or_file`]).
//! - [`Vault`]: the redb-backed store: [`Vault::set`], [`Vault::list`],
//!   [`Vault::remove`], [`Vault::resolve`], [`Vault::rotate`],
//!   [`Vault::retire`], [`Vault::status`].
//! - [`SecretResolver`]: the narrow interface the fetch primitive uses.
//! - [`HostBinding`], [`Placement`], [`SecretMeta`]: where a secret may go
//!   and how it is put into a request.
//!
//! # Key hierarchy
//! ```text
//! master key (32 bytes, never stored in the vault)
//!   └─ HKDF-SHA256 ─> KEK kek-v{n}            (per version; rotate/retire)
//!        └─ AES-256-GCM wrap ─> DEK dek-…     (per workspace; replaced at the encryption limit)
//!             └─ AES-256-GCM ─> secret value  (AAD: format | workspace | name | DEK id | metadata)
//! ```
//! Every encryption uses a fresh random 96-bit nonce and is counted; a key
//! is replaced once it reaches [`Vault::ENCRYPTION_LIMIT`] (2^31)
//! encryptions, well under the 2^32 of NIST SP 800-38D.

mod binding;
mod crypto;
mod error;
mod key;
mod vault;

pub use binding::{HostBinding, Placement, SecretMeta};
pub use error::VaultError;
pub use key::{MasterKey, MasterKeySource, SecretValue};
pub use vault::{DataKeyStatus, KekStatus, RotationReport, SecretResolver, Vault, VaultOptions, VaultStatus};
