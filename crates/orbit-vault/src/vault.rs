//! The vault: a redb file of wrapped data keys and encrypted secrets.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use orbit_workspace::{DatabaseLock, Opened, Principal, ReadMostlyDatabase, WorkspaceId};
use redb::{
    Database, Durability, ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::{self, FORMAT_VERSION, KeyBytes, NONCE_LEN, TAG_LEN, VAULT_ID_LEN, VaultId};
use crate::{HostBinding, MasterKey, Placement, SecretMeta, SecretValue, VaultError};

/// Vault-wide state: key `"kek_state"` holds a JSON [`KekState`], key
/// `"vault_id"` the vault's 16 random id bytes (see [`Vault`]).
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("vault_meta");
/// Data keys by id: JSON [`DekRecord`].
const DEKS: TableDefinition<&str, &[u8]> = TableDefinition::new("vault_deks");
/// Workspace -> id of its current data key.
const CURRENT_DEK: TableDefinition<&str, &str> = TableDefinition::new("vault_current_dek");
/// (workspace, name) -> binary secret record (see [`SecretRecord`]).
const SECRETS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("vault_secrets");
/// (workspace, name) -> last use, in ms since the Unix epoch. Kept apart
/// from the authenticated record so marking a use needs no re-encryption.
const LAST_USED: TableDefinition<(&str, &str), u64> = TableDefinition::new("vault_last_used");

const KEK_STATE_KEY: &str = "kek_state";
const VAULT_ID_KEY: &str = "vault_id";

/// Tuning for [`Vault::open_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VaultOptions {
    /// Encryptions allowed under one key (a data key's secret encryptions,
    /// or a key-encryption key's wraps) before it is replaced. Clamped to
    /// `1..=`[`Vault::ENCRYPTION_LIMIT`].
    pub max_encryptions_per_key: u64,
}

impl Default for VaultOptions {
    fn default() -> Self {
        VaultOptions { max_encryptions_per_key: Vault::ENCRYPTION_LIMIT }
    }
}

/// What [`Vault::rotate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RotationReport {
    /// The key-encryption key version that was current before.
    pub previous_version: u32,
    /// Its id (`kek-v{n}`).
    pub previous_kek_id: String,
    /// The key-encryption key version now current.
    pub version: u32,
    /// Its id (`kek-v{n}`).
    pub kek_id: String,
    /// How many data keys were re-wrapped.
    pub rewrapped: usize,
}

/// One key-encryption key version, for [`VaultStatus`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KekStatus {
    /// The version.
    pub version: u32,
    /// Its id (`kek-v{n}`).
    pub id: String,
    /// Data keys wrapped under it so far (its encryption count).
    pub wraps: u64,
    /// Data keys currently wrapped by it.
    pub data_keys: usize,
    /// Whether it is the current version.
    pub current: bool,
    /// When it was retired, in ms since the Unix epoch; `None` if usable.
    pub retired_at_ms: Option<u64>,
}

/// One data key, for [`VaultStatus`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DataKeyStatus {
    /// The data key's id (`dek-<32 hex>`).
    pub id: String,
    /// The workspace it belongs to.
    pub workspace: String,
    /// The id of the key-encryption key wrapping it.
    pub kek_id: String,
    /// Secrets encrypted under it so far (its encryption count).
    pub encryptions: u64,
    /// Whether new secrets in its workspace are encrypted under it.
    pub current: bool,
    /// When it was created, in ms since the Unix epoch.
    pub created_at_ms: u64,
}

/// A snapshot of the vault's keys, for `orbit vault status`. Holds no key
/// material.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VaultStatus {
    /// The current key-encryption key's id.
    pub kek_id: String,
    /// The current key-encryption key's version.
    pub kek_version: u32,
    /// Encryptions allowed per key before it is replaced.
    pub encryption_limit: u64,
    /// Every key-encryption key version, ascending, retired ones included.
    pub keks: Vec<KekStatus>,
    /// Every data key, by id.
    pub data_keys: Vec<DataKeyStatus>,
    /// Number of stored secrets across all workspaces.
    pub secrets: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct KekInfo {
    check: String,
    wraps: u64,
    created_at_ms: u64,
    retired_at_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct KekState {
    format: u32,
    current: u32,
    versions: BTreeMap<u32, KekInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DekRecord {
    workspace: String,
    kek_version: u32,
    nonce: String,
    wrapped: String,
    encryptions: u64,
    created_at_ms: u64,
}

/// A stored secret. Binary layout:
///
/// ```text
/// u8   format version (1)
/// u8   dek id length, then the dek id (ASCII)
/// [12] nonce
/// u32  metadata length (big-endian), then the metadata (JSON SecretMeta)
/// ..   ciphertext with 16-byte tag (the rest)
/// ```
///
/// The AAD covers format version, workspace, name, dek id and the
/// metadata bytes, so changing any of them fails authentication.
struct SecretRecord<'a> {
    dek_id: &'a [u8],
    nonce: [u8; NONCE_LEN],
    meta: &'a [u8],
    ciphertext: &'a [u8],
}

impl<'a> SecretRecord<'a> {
    fn encode(dek_id: &str, nonce: &[u8; NONCE_LEN], meta: &[u8], ciphertext: &[u8]) -> Vec<u8> {
        let dek_len = u8::try_from(dek_id.len()).expect("dek ids are short");
        let meta_len = u32::try_from(meta.len()).expect("metadata is small");
        let mut out = Vec::with_capacity(2 + dek_id.len() + NONCE_LEN + 4 + meta.len() + ciphertext.len());
        out.push(FORMAT_VERSION as u8);
        out.push(dek_len);
        out.extend_from_slice(dek_id.as_bytes());
        out.extend_from_slice(nonce);
        out.extend_from_slice(&meta_len.to_be_bytes());
        out.extend_from_slice(meta);
        out.extend_from_slice(ciphertext);
        out
    }

    fn decode(bytes: &'a [u8]) -> Result<SecretRecord<'a>, VaultError> {
        let corrupt = || VaultError::Corrupt("truncated secret record".into());
        let (&version, rest) = bytes.split_first().ok_or_else(corrupt)?;
        if u32::from(version) != FORMAT_VERSION {
            return Err(VaultError::UnsupportedFormat(version.into()));
        }
        let (&dek_len, rest) = rest.split_first().ok_or_else(corrupt)?;
        let (dek_id, rest) = rest.split_at_checked(dek_len.into()).ok_or_else(corrupt)?;
        let (nonce, rest) = rest.split_at_checked(NONCE_LEN).ok_or_else(corrupt)?;
        let (meta_len, rest) = rest.split_at_checked(4).ok_or_else(corrupt)?;
        let meta_len = u32::from_be_bytes(meta_len.try_into().expect("4 bytes")) as usize;
        let (meta, ciphertext) = rest.split_at_checked(meta_len).ok_or_else(corrupt)?;
        if ciphertext.len() < TAG_LEN {
            return Err(corrupt());
        }
        Ok(SecretRecord { dek_id, nonce: nonce.try_into().expect("12 bytes"), meta, ciphertext })
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn corrupt(what: &str, e: impl fmt::Display) -> VaultError {
    VaultError::Corrupt(format!("{what}: {e}"))
}

fn validate_name(name: &str) -> Result<(), VaultError> {
    if name.is_empty() {
        return Err(VaultError::InvalidSecretName("empty"));
    }
    if name.len() > Vault::MAX_NAME_LEN {
        return Err(VaultError::InvalidSecretName("longer than 128 bytes"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-') {
        return Err(VaultError::InvalidSecretName("may hold only A-Z, a-z, 0-9, '_', '.' and '-'"));
    }
    // `.` and `..` are path segments no URL can name.
    if name.bytes().all(|b| b == b'.') {
        return Err(VaultError::InvalidSecretName("may not be only dots"));
    }
    Ok(())
}

/// The encrypted secrets vault.
///
/// Envelope encryption: key-encryption keys (KEKs, `kek-v{n}`) are derived
/// from the [`MasterKey`] with HKDF-SHA256; each workspace has a random
/// 256-bit data key (DEK) wrapped by the current KEK with AES-256-GCM; each
/// secret is encrypted under its workspace's current DEK with AES-256-GCM,
/// a random 96-bit nonce and an AAD binding format version, workspace,
/// name, DEK id and metadata.
///
/// Each vault file has a random 16-byte id, made when the file is created
/// (or, for a file from before ids existed, when it is first opened) and
/// mixed into the HKDF salt of its KEKs and into the AAD of its wrapped
/// DEKs. Two vault files sharing a master key therefore derive different
/// KEKs, and a wrapped DEK (with the secrets under it) copied from one
/// vault file into another fails to decrypt.
///
/// Plaintext never reaches the file. In memory, the vault keeps plaintext
/// only in its own zeroizing buffers — [`SecretValue`], [`MasterKey`],
/// derived KEKs, unwrapped DEKs and decryption scratch buffers — which are
/// wiped when dropped. Copies a caller makes of an exposed value (e.g.
/// into an HTTP header, URL or request body) are outside the vault's
/// control and are not zeroized by it.
///
/// Every write commits with `Durability::Immediate` and two-phase commit,
/// except [`Vault::mark_used`] (see there). The type is `Send + Sync`;
/// writers are serialised by redb.
pub struct Vault {
    /// Read-only until the first write (see [`ReadMostlyDatabase`]): a
    /// process that reads no secret, or only reads, syncs nothing.
    db: ReadMostlyDatabase,
    master: MasterKey,
    limit: u64,
    path: PathBuf,
    vault_id: VaultId,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault").field("path", &self.path).field("limit", &self.limit).finish_non_exhaustive()
    }
}

impl Vault {
    /// Default number of encryptions per key before it is replaced: 2^31,
    /// half the 2^32 that NIST SP 800-38D allows with random 96-bit nonces.
    pub const ENCRYPTION_LIMIT: u64 = 1 << 31;
    /// Largest secret value, in bytes (8 KiB).
    pub const MAX_VALUE_LEN: usize = 8 * 1024;
    /// Shortest secret value, in bytes. Shorter values could be guessed
    /// through a bound host that echoes input, by watching which guesses
    /// come back `[REDACTED]`. See [`Placement::check_value`].
    pub const MIN_VALUE_LEN: usize = 8;
    /// Longest secret name, in bytes.
    pub const MAX_NAME_LEN: usize = 128;

    /// Opens (creating if missing) the vault file at `path` with default
    /// options. See [`Vault::open_with`].
    ///
    /// # Errors
    /// As [`Vault::open_with`].
    pub fn open(path: &Path, master: MasterKey) -> Result<Vault, VaultError> {
        Self::open_with(path, master, VaultOptions::default())
    }

    /// Opens (creating if missing) the vault file at `path`. A new file is
    /// given mode 0600, a random vault id and key-encryption key version
    /// 1; an existing one has its key-check values verified against
    /// `master`. An existing file without a vault id (made before ids
    /// existed) is given one, and its key-check values are re-derived;
    /// data keys it wrapped before that no longer unwrap, so secrets stored
    /// in it before must be stored again.
    ///
    /// # Errors
    /// [`VaultError::WrongMasterKey`] when `master` is not the key the
    /// vault was created with, [`VaultError::UnsupportedFormat`] for a
    /// newer format, [`VaultError::Corrupt`] for unreadable state,
    /// [`VaultError::Storage`] when redb fails (including when another
    /// vault, of this process or another, has the file open).
    ///
    /// A vault that was closed cleanly opens read-only until its first
    /// write ([`ReadMostlyDatabase`]), so a process that only resolves
    /// secrets, or none, syncs nothing for it.
    pub fn open_with(path: &Path, master: MasterKey, options: VaultOptions) -> Result<Vault, VaultError> {
        let limit = options.max_encryptions_per_key.clamp(1, Self::ENCRYPTION_LIMIT);
        // The lock first: what follows, read-only or not, is this vault's alone.
        let lock = match ReadMostlyDatabase::open_read_only(path, DatabaseLock::take(path)?)? {
            Opened::ReadOnly(db) => {
                let ready = initialised(&*db.read()?, &master)?;
                if let Some(vault_id) = ready {
                    return Ok(Vault { db, master, limit, path: path.to_owned(), vault_id });
                }
                db.into_lock()
            }
            Opened::NeedsWrite(lock) => lock,
        };
        // Missing, not closed cleanly, or not set up (or set up before
        // vault ids): open it for writing.
        let existed = path.exists();
        let db = Database::create(path)?;
        #[cfg(unix)]
        if !existed {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| VaultError::Storage(e.into()))?;
        }
        let vault_id = init(&db, &master)?;
        Ok(Vault {
            db: ReadMostlyDatabase::from_writable(path, db, lock),
            master,
            limit,
            path: path.to_owned(),
            vault_id,
        })
    }

    /// The vault file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn begin_write(&self) -> Result<WriteTransaction, VaultError> {
        begin_durable_write(self.db.writable()?)
    }

    fn new_kek_info(&self, version: u32) -> KekInfo {
        new_kek_info(&self.master, &self.vault_id, version)
    }

    /// Makes a new KEK version current (no re-wrapping).
    fn add_kek_version(&self, state: &mut KekState) -> u32 {
        let next = state.versions.keys().next_back().copied().unwrap_or(0) + 1;
        state.versions.insert(next, self.new_kek_info(next));
        state.current = next;
        next
    }

    /// Wraps `dek` (id `dek_id`, of `workspace`) under the current KEK,
    /// first moving to a new KEK version if the current one has reached
    /// the encryption limit. Counts the wrap.
    fn wrap_dek(
        &self,
        state: &mut KekState,
        workspace: &str,
        dek_id: &str,
        dek: &[u8; 32],
    ) -> Result<(u32, [u8; NONCE_LEN], Vec<u8>), VaultError> {
        if state.versions[&state.current].wraps >= self.limit {
            self.add_kek_version(state);
        }
        let version = state.current;
        let kek = crypto::derive_kek(&self.master, &self.vault_id, version);
        let aad = crypto::dek_aad(&self.vault_id, workspace, dek_id, &crypto::kek_id(version));
        let (nonce, wrapped) = crypto::seal(&kek, &aad, dek)?;
        state.versions.get_mut(&version).expect("current version exists").wraps += 1;
        Ok((version, nonce, wrapped))
    }

    /// Unwraps a data key for `workspace`; `None` if it fails to
    /// authenticate or its KEK version is unknown or retired.
    fn unwrap_dek(&self, state: &KekState, workspace: &str, dek_id: &str, rec: &DekRecord) -> Option<KeyBytes> {
        if rec.workspace != workspace {
            return None;
        }
        let info = state.versions.get(&rec.kek_version)?;
        if info.retired_at_ms.is_some() {
            return None;
        }
        let nonce: [u8; NONCE_LEN] = hex::decode(&rec.nonce).ok()?.try_into().ok()?;
        let wrapped = hex::decode(&rec.wrapped).ok()?;
        let kek = crypto::derive_kek(&self.master, &self.vault_id, rec.kek_version);
        let aad = crypto::dek_aad(&self.vault_id, workspace, dek_id, &crypto::kek_id(rec.kek_version));
        let plain = crypto::open(&kek, &nonce, &aad, &wrapped)?;
        let bytes: [u8; 32] = plain.as_slice().try_into().ok()?;
        Some(Zeroizing::new(bytes))
    }

    /// Creates and stores a new data key for `workspace`, makes it current
    /// there, and returns its id and plaintext.
    fn new_dek(
        &self,
        tx: &WriteTransaction,
        state: &mut KekState,
        workspace: &str,
    ) -> Result<(String, KeyBytes), VaultError> {
        let dek = crypto::random_bytes::<32>()?;
        let dek_id = format!("dek-{}", hex::encode(*crypto::random_bytes::<16>()?));
        let (kek_version, nonce, wrapped) = self.wrap_dek(state, workspace, &dek_id, &dek)?;
        let rec = DekRecord {
            workspace: workspace.to_owned(),
            kek_version,
            nonce: hex::encode(nonce),
            wrapped: hex::encode(wrapped),
            encryptions: 0,
            created_at_ms: now_ms(),
        };
        tx.open_table(DEKS)?.insert(dek_id.as_str(), &serde_json::to_vec(&rec).expect("record serialises")[..])?;
        tx.open_table(CURRENT_DEK)?.insert(workspace, dek_id.as_str())?;
        Ok((dek_id, dek))
    }

    /// Stores `value` as secret `name` in `ws`, replacing any existing
    /// secret of that name (its last-use time is reset). Returns the stored
    /// metadata. `owner` is recorded as its owner; `created_at_ms` is now.
    ///
    /// The value is encrypted under the workspace's current data key; when
    /// that key has reached the encryption limit (or the workspace has
    /// none), a new data key is created first. One durable commit.
    ///
    /// # Errors
    /// [`VaultError::InvalidSecretName`] unless `name` is 1 to 128 bytes of
    /// `[A-Za-z0-9_.-]`, not only dots; [`VaultError::NoHosts`] for an empty `hosts`;
    /// [`VaultError::InvalidHost`] for a non-canonical binding (build them
    /// with [`HostBinding::parse`]); [`VaultError::InvalidPlacement`];
    /// [`VaultError::ValueTooLarge`] over [`Vault::MAX_VALUE_LEN`] bytes;
    /// [`VaultError::InvalidValue`] for a value shorter than
    /// [`Vault::MIN_VALUE_LEN`] bytes or one that cannot go where
    /// `placement` puts it (see [`Placement::check_value`]); [`VaultError::UnwrapDataKey`] when the
    /// workspace's data key is damaged; [`VaultError::Random`];
    /// [`VaultError::Storage`].
    pub fn set(
        &self,
        ws: &WorkspaceId,
        name: &str,
        value: SecretValue,
        hosts: Vec<HostBinding>,
        placement: Placement,
        owner: &orbit_workspace::UserId,
    ) -> Result<SecretMeta, VaultError> {
        validate_name(name)?;
        if hosts.is_empty() {
            return Err(VaultError::NoHosts);
        }
        for h in &hosts {
            h.validate()?;
        }
        placement.validate()?;
        if value.len() > Self::MAX_VALUE_LEN {
            return Err(VaultError::ValueTooLarge { len: value.len(), max: Self::MAX_VALUE_LEN });
        }
        placement.check_value(value.expose())?;

        let meta = SecretMeta {
            name: name.to_owned(),
            hosts,
            placement,
            owner: Some(owner.clone()),
            created_at_ms: now_ms(),
            last_used_at_ms: None,
        };
        let meta_json = serde_json::to_vec(&meta).expect("metadata serialises");
        let workspace = ws.as_str();

        let tx = self.begin_write()?;
        {
            let mut state = load_state(&tx.open_table(META)?)?;
            let current = tx.open_table(CURRENT_DEK)?.get(workspace)?.map(|v| v.value().to_owned());
            let existing = match current {
                Some(id) => {
                    let rec = load_dek(&tx.open_table(DEKS)?, &id)?;
                    match rec {
                        Some(rec) if rec.encryptions < self.limit => {
                            let dek = self
                                .unwrap_dek(&state, workspace, &id, &rec)
                                .ok_or_else(|| VaultError::UnwrapDataKey { id: id.clone() })?;
                            Some((id, dek))
                        }
                        _ => None,
                    }
                }
                None => None,
            };
            let (dek_id, dek) = match existing {
                Some(found) => found,
                None => self.new_dek(&tx, &mut state, workspace)?,
            };
            let aad = crypto::secret_aad(workspace, name, &dek_id, &meta_json);
            let (nonce, ciphertext) = crypto::seal(&dek, &aad, value.expose().as_bytes())?;
            drop(value);
            let record = SecretRecord::encode(&dek_id, &nonce, &meta_json, &ciphertext);
            tx.open_table(SECRETS)?.insert((workspace, name), &record[..])?;
            tx.open_table(LAST_USED)?.remove((workspace, name))?;

            let mut deks = tx.open_table(DEKS)?;
            let mut rec = load_dek(&deks, &dek_id)?.ok_or_else(|| corrupt("data key", "vanished"))?;
            rec.encryptions += 1;
            deks.insert(dek_id.as_str(), &serde_json::to_vec(&rec).expect("record serialises")[..])?;
            save_state(&mut tx.open_table(META)?, &state)?;
        }
        tx.commit()?;
        Ok(meta)
    }

    /// Metadata of every secret in `ws`, sorted by name (byte order). Never
    /// decrypts and never returns a value.
    ///
    /// # Errors
    /// [`VaultError::Corrupt`]/[`VaultError::UnsupportedFormat`] when a
    /// record cannot be parsed; [`VaultError::Storage`].
    pub fn list(&self, ws: &WorkspaceId) -> Result<Vec<SecretMeta>, VaultError> {
        let workspace = ws.as_str();
        let tx = self.db.read()?;
        let secrets = tx.open_table(SECRETS)?;
        let last_used = tx.open_table(LAST_USED)?;
        let mut out = Vec::new();
        for entry in secrets.range((workspace, "")..)? {
            let (k, v) = entry?;
            let (kws, name) = k.value();
            if kws != workspace {
                break;
            }
            let record = SecretRecord::decode(v.value())?;
            let mut meta: SecretMeta = serde_json::from_slice(record.meta).map_err(|e| corrupt("metadata", e))?;
            meta.last_used_at_ms = last_used.get((workspace, name))?.map(|g| g.value());
            out.push(meta);
        }
        Ok(out)
    }

    /// Deletes secret `name` from `ws`; returns whether it existed.
    ///
    /// # Errors
    /// [`VaultError::InvalidSecretName`]; [`VaultError::Storage`].
    pub fn remove(&self, ws: &WorkspaceId, name: &str) -> Result<bool, VaultError> {
        validate_name(name)?;
        let tx = self.begin_write()?;
        let existed = {
            let existed = tx.open_table(SECRETS)?.remove((ws.as_str(), name))?.is_some();
            tx.open_table(LAST_USED)?.remove((ws.as_str(), name))?;
            existed
        };
        tx.commit()?;
        Ok(existed)
    }

    /// Metadata of secret `name` of `ws` (with last-use time), or `None`
    /// when there is no such secret. Does no cryptography: no data key is
    /// unwrapped and nothing is decrypted, so the fetch primitive can check
    /// a request against the secret's bindings before paying for (or
    /// revealing the timing of) decryption.
    ///
    /// The metadata is authenticated only when the secret is decrypted:
    /// this call trusts the file as read. Callers enforcing bindings must
    /// use (or compare against) the metadata [`Vault::resolve`] returns
    /// before sending the value anywhere.
    ///
    /// # Errors
    /// [`VaultError::Corrupt`] or [`VaultError::UnsupportedFormat`] when the
    /// record or its metadata is unreadable; [`VaultError::Decrypt`] when
    /// the metadata names another secret (the record was moved), as
    /// [`Vault::resolve`] would; [`VaultError::InvalidSecretName`];
    /// [`VaultError::Storage`].
    pub fn meta(&self, ws: &WorkspaceId, name: &str) -> Result<Option<SecretMeta>, VaultError> {
        validate_name(name)?;
        let workspace = ws.as_str();
        let tx = self.db.read()?;
        let secrets = tx.open_table(SECRETS)?;
        let Some(bytes) = secrets.get((workspace, name))? else {
            return Ok(None);
        };
        let record = SecretRecord::decode(bytes.value())?;
        let mut meta: SecretMeta = serde_json::from_slice(record.meta).map_err(|e| corrupt("metadata", e))?;
        if meta.name != name {
            return Err(VaultError::Decrypt { workspace: workspace.to_owned(), name: name.to_owned() });
        }
        meta.last_used_at_ms = tx.open_table(LAST_USED)?.get((workspace, name))?.map(|g| g.value());
        Ok(Some(meta))
    }

    /// Decrypts secret `name` of `ws`: its metadata (with last-use time)
    /// and value, or `None` when there is no such secret. For the fetch
    /// primitive only; nothing user-facing may return the value.
    ///
    /// # Errors
    /// [`VaultError::Decrypt`] when the record fails authentication
    /// (tampered bytes, moved to another name or workspace, unknown or
    /// damaged data key, wrong master key); [`VaultError::Corrupt`] or
    /// [`VaultError::UnsupportedFormat`] when its framing is unreadable;
    /// [`VaultError::InvalidSecretName`]; [`VaultError::Storage`].
    pub fn resolve(&self, ws: &WorkspaceId, name: &str) -> Result<Option<(SecretMeta, SecretValue)>, VaultError> {
        validate_name(name)?;
        let workspace = ws.as_str();
        let tx = self.db.read()?;
        let Some(bytes) = tx.open_table(SECRETS)?.get((workspace, name))?.map(|g| g.value().to_vec()) else {
            return Ok(None);
        };
        let record = SecretRecord::decode(&bytes)?;
        let fail = || VaultError::Decrypt { workspace: workspace.to_owned(), name: name.to_owned() };
        let state = load_state(&tx.open_table(META)?)?;
        let dek_id = std::str::from_utf8(record.dek_id).map_err(|_| fail())?;
        let dek_rec = load_dek(&tx.open_table(DEKS)?, dek_id)?.ok_or_else(fail)?;
        let dek = self.unwrap_dek(&state, workspace, dek_id, &dek_rec).ok_or_else(fail)?;
        let aad = crypto::secret_aad(workspace, name, dek_id, record.meta);
        let plain = crypto::open(&dek, &record.nonce, &aad, record.ciphertext).ok_or_else(fail)?;
        let mut meta: SecretMeta = serde_json::from_slice(record.meta).map_err(|_| fail())?;
        if meta.name != name {
            return Err(fail());
        }
        let mut plain = plain;
        let value = match String::from_utf8(std::mem::take(&mut *plain)) {
            Ok(s) => SecretValue::new(s),
            Err(e) => {
                drop(Zeroizing::new(e.into_bytes()));
                return Err(fail());
            }
        };
        meta.last_used_at_ms = tx.open_table(LAST_USED)?.get((workspace, name))?.map(|g| g.value());
        Ok(Some((meta, value)))
    }

    /// Records that secret `name` of `ws` was used at `at_ms` (ms since the
    /// Unix epoch); keeps the later of this and any earlier record. Does
    /// nothing when the secret does not exist (it may have been removed
    /// since it was resolved).
    ///
    /// Commits with `Durability::None`: the last-use time is advisory, so a
    /// crash may lose recent updates; it is persisted by the next durable
    /// write. This keeps an fsync off the fetch path.
    ///
    /// # Errors
    /// [`VaultError::InvalidSecretName`]; [`VaultError::Storage`].
    pub fn mark_used(&self, ws: &WorkspaceId, name: &str, at_ms: u64) -> Result<(), VaultError> {
        validate_name(name)?;
        let key = (ws.as_str(), name);
        let mut tx = self.db.writable()?.begin_write()?;
        tx.set_durability(Durability::None)?;
        {
            if tx.open_table(SECRETS)?.get(key)?.is_none() {
                return Ok(());
            }
            let mut last_used = tx.open_table(LAST_USED)?;
            let previous = last_used.get(key)?.map(|g| g.value());
            if previous.is_none_or(|p| p < at_ms) {
                last_used.insert(key, at_ms)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Adds a new key-encryption key version, makes it current, and
    /// re-wraps every data key under it (with fresh nonces) in one durable
    /// commit. Older versions stay usable for unwrapping until retired
    /// with [`Vault::retire`]. Secrets themselves are not re-encrypted.
    ///
    /// # Errors
    /// [`VaultError::UnwrapDataKey`] when a data key fails to unwrap
    /// (nothing is changed); [`VaultError::Random`];
    /// [`VaultError::Storage`].
    pub fn rotate(&self) -> Result<RotationReport, VaultError> {
        let tx = self.begin_write()?;
        let report = {
            let mut meta = tx.open_table(META)?;
            let mut state = load_state(&meta)?;
            let previous_version = state.current;
            self.add_kek_version(&mut state);
            let mut deks = tx.open_table(DEKS)?;
            let mut all = Vec::new();
            for entry in deks.iter()? {
                let (k, v) = entry?;
                let rec: DekRecord = serde_json::from_slice(v.value()).map_err(|e| corrupt("data key", e))?;
                all.push((k.value().to_owned(), rec));
            }
            for (id, rec) in &mut all {
                let dek = self
                    .unwrap_dek(&state, &rec.workspace, id, rec)
                    .ok_or_else(|| VaultError::UnwrapDataKey { id: id.clone() })?;
                let (version, nonce, wrapped) = self.wrap_dek(&mut state, &rec.workspace, id, &dek)?;
                rec.kek_version = version;
                rec.nonce = hex::encode(nonce);
                rec.wrapped = hex::encode(wrapped);
                deks.insert(id.as_str(), &serde_json::to_vec(&rec).expect("record serialises")[..])?;
            }
            save_state(&mut meta, &state)?;
            RotationReport {
                previous_version,
                previous_kek_id: crypto::kek_id(previous_version),
                version: state.current,
                kek_id: crypto::kek_id(state.current),
                rewrapped: all.len(),
            }
        };
        tx.commit()?;
        Ok(report)
    }

    /// Retires key-encryption key `version`: it can no longer unwrap
    /// anything. Retiring an already retired version does nothing.
    ///
    /// # Errors
    /// [`VaultError::UnknownKeyVersion`] for a version that never existed;
    /// [`VaultError::RetireCurrent`] for the current version;
    /// [`VaultError::KeyInUse`] while any data key is still wrapped by it
    /// (run [`Vault::rotate`] first); [`VaultError::Storage`].
    pub fn retire(&self, version: u32) -> Result<(), VaultError> {
        let tx = self.begin_write()?;
        {
            let mut meta = tx.open_table(META)?;
            let mut state = load_state(&meta)?;
            let Some(info) = state.versions.get(&version) else {
                return Err(VaultError::UnknownKeyVersion(version));
            };
            if info.retired_at_ms.is_some() {
                return Ok(());
            }
            if version == state.current {
                return Err(VaultError::RetireCurrent(version));
            }
            let mut in_use = 0;
            for entry in tx.open_table(DEKS)?.iter()? {
                let (_, v) = entry?;
                let rec: DekRecord = serde_json::from_slice(v.value()).map_err(|e| corrupt("data key", e))?;
                in_use += usize::from(rec.kek_version == version);
            }
            if in_use > 0 {
                return Err(VaultError::KeyInUse { version, deks: in_use });
            }
            state.versions.get_mut(&version).expect("checked above").retired_at_ms = Some(now_ms());
            save_state(&mut meta, &state)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The current key-encryption key, every key version and data key with
    /// its encryption count, and the number of secrets. No key material.
    ///
    /// # Errors
    /// [`VaultError::Corrupt`] for unreadable state; [`VaultError::Storage`].
    pub fn status(&self) -> Result<VaultStatus, VaultError> {
        let tx = self.db.read()?;
        let state = load_state(&tx.open_table(META)?)?;
        let current: Vec<String> = {
            let table = tx.open_table(CURRENT_DEK)?;
            let mut ids = Vec::new();
            for entry in table.iter()? {
                ids.push(entry?.1.value().to_owned());
            }
            ids
        };
        let mut data_keys = Vec::new();
        let mut per_kek: BTreeMap<u32, usize> = BTreeMap::new();
        for entry in tx.open_table(DEKS)?.iter()? {
            let (k, v) = entry?;
            let rec: DekRecord = serde_json::from_slice(v.value()).map_err(|e| corrupt("data key", e))?;
            let id = k.value().to_owned();
            *per_kek.entry(rec.kek_version).or_default() += 1;
            data_keys.push(DataKeyStatus {
                current: current.contains(&id),
                id,
                workspace: rec.workspace,
                kek_id: crypto::kek_id(rec.kek_version),
                encryptions: rec.encryptions,
                created_at_ms: rec.created_at_ms,
            });
        }
        let keks = state
            .versions
            .iter()
            .map(|(&version, info)| KekStatus {
                version,
                id: crypto::kek_id(version),
                wraps: info.wraps,
                data_keys: per_kek.get(&version).copied().unwrap_or(0),
                current: version == state.current,
                retired_at_ms: info.retired_at_ms,
            })
            .collect();
        let secrets = tx.open_table(SECRETS)?.len()?;
        Ok(VaultStatus {
            kek_id: crypto::kek_id(state.current),
            kek_version: state.current,
            encryption_limit: self.limit,
            keks,
            data_keys,
            secrets,
        })
    }
}

fn begin_durable_write(db: &Database) -> Result<WriteTransaction, VaultError> {
    let mut tx = db.begin_write()?;
    tx.set_durability(Durability::Immediate)?;
    tx.set_two_phase_commit(true);
    Ok(tx)
}

fn new_kek_info(master: &MasterKey, vault_id: &VaultId, version: u32) -> KekInfo {
    KekInfo {
        check: crypto::kek_check(master, vault_id, version),
        wraps: 0,
        created_at_ms: now_ms(),
        retired_at_ms: None,
    }
}

/// Checks `master` against the key-check value of every usable KEK
/// version. `vault_id` is empty for a vault made before vault ids existed.
fn verify_master(master: &MasterKey, vault_id: &[u8], state: &KekState) -> Result<(), VaultError> {
    for (&version, info) in &state.versions {
        if info.retired_at_ms.is_none() && crypto::kek_check(master, vault_id, version) != info.check {
            return Err(VaultError::WrongMasterKey);
        }
    }
    Ok(())
}

/// The vault id of a vault set up with every table, a key state and a
/// vault id, after verifying `master` against it; `None` when [`init`]
/// must write.
///
/// # Errors
/// [`VaultError::WrongMasterKey`], and as [`parse_state`].
fn initialised(tx: &ReadTransaction, master: &MasterKey) -> Result<Option<VaultId>, VaultError> {
    let tables = tx.open_table(DEKS).is_ok()
        && tx.open_table(CURRENT_DEK).is_ok()
        && tx.open_table(SECRETS).is_ok()
        && tx.open_table(LAST_USED).is_ok();
    let Ok(meta) = tx.open_table(META) else { return Ok(None) };
    let (Some(state), Some(id), true) = (meta.get(KEK_STATE_KEY)?, meta.get(VAULT_ID_KEY)?, tables) else {
        return Ok(None);
    };
    let id: VaultId = id.value().try_into().map_err(|_| corrupt("vault id", "not 16 bytes"))?;
    verify_master(master, &id, &parse_state(state.value())?)?;
    Ok(Some(id))
}

/// Creates the tables, vault id and key state of a new vault, or verifies
/// `master` against an existing one (giving it a vault id if it has none).
/// Returns the vault id.
fn init(db: &Database, master: &MasterKey) -> Result<VaultId, VaultError> {
    let tx = begin_durable_write(db)?;
    let vault_id = {
        let mut meta = tx.open_table(META)?;
        tx.open_table(DEKS)?;
        tx.open_table(CURRENT_DEK)?;
        tx.open_table(SECRETS)?;
        tx.open_table(LAST_USED)?;
        let state = meta.get(KEK_STATE_KEY)?.map(|v| v.value().to_vec());
        let id = meta.get(VAULT_ID_KEY)?.map(|v| v.value().to_vec());
        match (state, id) {
            (Some(state), Some(id)) => {
                // An initialised vault (all tables were created with the
                // state): verify the key and change nothing. Dropping the
                // transaction aborts it, without an fsync.
                let id: VaultId = id.as_slice().try_into().map_err(|_| corrupt("vault id", "not 16 bytes"))?;
                verify_master(master, &id, &parse_state(&state)?)?;
                return Ok(id);
            }
            (Some(state), None) => {
                // Made before vault ids existed: verify the key as it was
                // derived then, give the vault an id and re-derive the
                // key-check values with it.
                let mut state = parse_state(&state)?;
                verify_master(master, &[], &state)?;
                let id: VaultId = *crypto::random_bytes::<VAULT_ID_LEN>()?;
                for (&version, info) in &mut state.versions {
                    info.check = crypto::kek_check(master, &id, version);
                }
                meta.insert(VAULT_ID_KEY, &id[..])?;
                save_state(&mut meta, &state)?;
                id
            }
            (None, _) => {
                let id: VaultId = *crypto::random_bytes::<VAULT_ID_LEN>()?;
                let mut versions = BTreeMap::new();
                versions.insert(1, new_kek_info(master, &id, 1));
                let state = KekState { format: FORMAT_VERSION, current: 1, versions };
                meta.insert(VAULT_ID_KEY, &id[..])?;
                save_state(&mut meta, &state)?;
                id
            }
        }
    };
    tx.commit()?;
    Ok(vault_id)
}

fn parse_state(bytes: &[u8]) -> Result<KekState, VaultError> {
    let state: KekState = serde_json::from_slice(bytes).map_err(|e| corrupt("key state", e))?;
    if state.format != FORMAT_VERSION {
        return Err(VaultError::UnsupportedFormat(state.format));
    }
    if !state.versions.contains_key(&state.current) {
        return Err(corrupt("key state", "current version missing"));
    }
    Ok(state)
}

fn load_state(meta: &impl ReadableTable<&'static str, &'static [u8]>) -> Result<KekState, VaultError> {
    let bytes = meta.get(KEK_STATE_KEY)?.ok_or_else(|| corrupt("key state", "missing"))?;
    parse_state(bytes.value())
}

fn save_state(meta: &mut redb::Table<'_, &'static str, &'static [u8]>, state: &KekState) -> Result<(), VaultError> {
    meta.insert(KEK_STATE_KEY, &serde_json::to_vec(state).expect("state serialises")[..])?;
    Ok(())
}

fn load_dek(deks: &impl ReadableTable<&'static str, &'static [u8]>, id: &str) -> Result<Option<DekRecord>, VaultError> {
    match deks.get(id)? {
        None => Ok(None),
        Some(v) => Ok(Some(serde_json::from_slice(v.value()).map_err(|e| corrupt("data key", e))?)),
    }
}

/// Lets the fetch primitive look up secrets without depending on
/// [`Vault`] itself (tests can supply their own).
pub trait SecretResolver: Send + Sync + 'static {
    /// Decrypts secret `name` of `ws`; `None` when it does not exist.
    ///
    /// # Errors
    /// As [`Vault::resolve`].
    fn resolve(&self, ws: &WorkspaceId, name: &str) -> Result<Option<(SecretMeta, SecretValue)>, VaultError>;

    /// Metadata of secret `name` of `ws` without its value; `None` when it
    /// does not exist. Lets the fetch primitive check bindings before any
    /// decryption. The default decrypts via [`SecretResolver::resolve`]
    /// and drops the value; [`Vault`] overrides it with a lookup that does
    /// no cryptography (see [`Vault::meta`]).
    ///
    /// # Errors
    /// As [`Vault::meta`] (or [`SecretResolver::resolve`] for the default).
    fn meta(&self, ws: &WorkspaceId, name: &str) -> Result<Option<SecretMeta>, VaultError> {
        Ok(self.resolve(ws, name)?.map(|(m, _)| m))
    }

    /// Records a use of secret `name` of `ws` at `at_ms` (ms since the
    /// Unix epoch).
    ///
    /// # Errors
    /// As [`Vault::mark_used`].
    fn mark_used(&self, ws: &WorkspaceId, name: &str, at_ms: u64) -> Result<(), VaultError>;

    /// Records that the host placed secret `name` of `ws` into an outbound
    /// request (or a tool server's environment): who caused it, from which
    /// run, and where it went. Called by the primitives once per placement,
    /// off the request's path. The default records only the time, with
    /// [`SecretResolver::mark_used`]; a resolver that also keeps an audit
    /// trail overrides it (the `orbit` facade appends a `CredentialUse`
    /// audit event). Never given the value.
    ///
    /// # Errors
    /// As [`SecretResolver::mark_used`], or the audit trail's error.
    fn record_use(&self, ws: &WorkspaceId, name: &str, secret_use: &SecretUse) -> Result<(), VaultError> {
        self.mark_used(ws, name, secret_use.at_ms)
    }
}

/// One placement of a secret by the host, as given to
/// [`SecretResolver::record_use`]. Holds no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretUse {
    /// When, in ms since the Unix epoch.
    pub at_ms: u64,
    /// Where the secret went: `scheme://host:port` for HTTP (IPv6 hosts in
    /// brackets), `stdio://SERVER` for the environment of the stdio MCP
    /// server installed as `SERVER`.
    pub origin: String,
    /// The run that caused it, when a run did.
    pub run_id: Option<String>,
    /// Who caused it: the run's principal, or the host caller's.
    pub principal: Principal,
}

impl SecretUse {
    /// A use now (the system clock) by `principal`, sent to `origin`, from
    /// no run.
    pub fn now(origin: impl Into<String>, principal: Principal) -> Self {
        let at_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        Self { at_ms, origin: origin.into(), run_id: None, principal }
    }

    /// The same use, caused by run `run_id` (when `Some`).
    pub fn in_run(mut self, run_id: Option<String>) -> Self {
        self.run_id = run_id;
        self
    }
}

/// The origin of `url` as recorded in a [`SecretUse`]: `scheme://host:port`
/// with the port always written (the scheme's default when the URL has
/// none), IPv6 hosts in brackets, domain names lowercase without a
/// trailing dot. Never a path, query or user info.
pub fn origin_of(scheme: &str, host: &str, port: u16) -> String {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.contains(':') && !host.starts_with('[') {
        format!("{scheme}://[{host}]:{port}")
    } else {
        format!("{scheme}://{host}:{port}")
    }
}

impl SecretResolver for Vault {
    fn resolve(&self, ws: &WorkspaceId, name: &str) -> Result<Option<(SecretMeta, SecretValue)>, VaultError> {
        Vault::resolve(self, ws, name)
    }

    fn meta(&self, ws: &WorkspaceId, name: &str) -> Result<Option<SecretMeta>, VaultError> {
        Vault::meta(self, ws, name)
    }

    fn mark_used(&self, ws: &WorkspaceId, name: &str, at_ms: u64) -> Result<(), VaultError> {
        Vault::mark_used(self, ws, name, at_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::ReadableDatabase as _;

    fn read_meta(path: &Path, key: &str) -> Option<Vec<u8>> {
        let db = Database::create(path).unwrap();
        let table = db.begin_read().unwrap().open_table(META).unwrap();
        table.get(key).unwrap().map(|v| v.value().to_vec())
    }

    /// Rewrites a fresh vault file the way builds before vault ids made it:
    /// no id, key-check values derived without one.
    fn make_legacy(path: &Path, master: &MasterKey) {
        let db = Database::create(path).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut meta = tx.open_table(META).unwrap();
            meta.remove(VAULT_ID_KEY).unwrap();
            let mut state = load_state(&meta).unwrap();
            for (&version, info) in &mut state.versions {
                info.check = crypto::kek_check(master, &[], version);
            }
            save_state(&mut meta, &state).unwrap();
        }
        tx.commit().unwrap();
    }

    #[test]
    fn new_vaults_get_distinct_persistent_ids() {
        let dir = tempfile::tempdir().unwrap();
        let (p1, p2) = (dir.path().join("a.redb"), dir.path().join("b.redb"));
        let v1 = Vault::open(&p1, MasterKey::from_bytes([7; 32])).unwrap();
        let v2 = Vault::open(&p2, MasterKey::from_bytes([7; 32])).unwrap();
        assert_ne!(v1.vault_id, v2.vault_id);
        let id1 = v1.vault_id;
        drop((v1, v2));
        assert_eq!(read_meta(&p1, VAULT_ID_KEY).unwrap(), id1.to_vec());
        assert_eq!(Vault::open(&p1, MasterKey::from_bytes([7; 32])).unwrap().vault_id, id1, "kept on reopen");
        // Same master key, different vaults: different key-check values too.
        let check = |p: &Path| parse_state(&read_meta(p, KEK_STATE_KEY).unwrap()).unwrap().versions[&1].check.clone();
        assert_ne!(check(&p1), check(&p2));
    }

    #[test]
    fn a_vault_without_an_id_gets_one_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("legacy.redb");
        let master = || MasterKey::from_bytes([9; 32]);
        drop(Vault::open(&path, master()).unwrap());
        make_legacy(&path, &master());
        assert!(read_meta(&path, VAULT_ID_KEY).is_none());

        // A wrong key is still refused, and nothing is written.
        assert!(matches!(Vault::open(&path, MasterKey::from_bytes([8; 32])), Err(VaultError::WrongMasterKey)));
        assert!(read_meta(&path, VAULT_ID_KEY).is_none());

        let vault = Vault::open(&path, master()).unwrap();
        let id = vault.vault_id;
        let w = WorkspaceId::new("default").unwrap();
        let hosts = vec![HostBinding::parse("https://api.example.com").unwrap()];
        let placement = Placement::Query { param: "k".into() };
        vault
            .set(
                &w,
                "K",
                SecretValue::new("legacy-open-value".into()),
                hosts,
                placement,
                &orbit_workspace::UserId::new("cli").unwrap(),
            )
            .unwrap();
        drop(vault);
        assert_eq!(read_meta(&path, VAULT_ID_KEY).unwrap(), id.to_vec());
        let vault = Vault::open(&path, master()).unwrap();
        assert_eq!(vault.vault_id, id);
        assert_eq!(vault.resolve(&w, "K").unwrap().unwrap().1.expose(), "legacy-open-value");
        drop(vault);
        assert!(matches!(Vault::open(&path, MasterKey::from_bytes([8; 32])), Err(VaultError::WrongMasterKey)));
    }

    #[test]
    fn a_damaged_vault_id_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.redb");
        drop(Vault::open(&path, MasterKey::from_bytes([9; 32])).unwrap());
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(META).unwrap().insert(VAULT_ID_KEY, &[1u8, 2, 3][..]).unwrap();
            tx.commit().unwrap();
        }
        assert!(matches!(Vault::open(&path, MasterKey::from_bytes([9; 32])), Err(VaultError::Corrupt(_))));
    }
}
