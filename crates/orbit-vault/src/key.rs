//! The master key and secret values: the two kinds of plaintext the vault
//! handles. Both live in zeroizing buffers and print as placeholders. The
//! zeroizing covers these buffers only: copies a caller makes of the bytes
//! (e.g. into an HTTP request) are outside the vault's control.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use zeroize::{Zeroize, Zeroizing};

use crate::VaultError;
use crate::crypto::random_bytes;

/// Largest key file read, in bytes (base64 of 32 bytes is 44).
const MAX_KEY_FILE_LEN: u64 = 1024;

fn lenient(alphabet: &alphabet::Alphabet) -> GeneralPurpose {
    GeneralPurpose::new(alphabet, GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent))
}

/// The 32-byte root key of a vault. Key-encryption keys are derived from
/// it with HKDF-SHA256; it never touches the vault file.
///
/// Held in a zeroizing buffer; `Debug` prints `MasterKey([REDACTED])`.
pub struct MasterKey(Zeroizing<[u8; 32]>);

/// Where [`MasterKey::from_env_or_file`] found the master key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MasterKeySource {
    /// The `ORBIT_MASTER_KEY` environment variable.
    Env,
    /// An existing key file at this path.
    File(PathBuf),
    /// A key generated just now and written (mode 0600) to this path. The
    /// caller should tell the user where it is and that losing it loses
    /// every secret.
    Generated(PathBuf),
}

impl MasterKey {
    /// Length of a master key, in bytes.
    pub const LEN: usize = 32;
    /// The environment variable read by [`MasterKey::from_env_or_file`].
    pub const ENV_VAR: &'static str = "ORBIT_MASTER_KEY";
    /// Name of the key file inside the data directory.
    pub const FILE_NAME: &'static str = "master.key";

    /// Wraps 32 key bytes (for tests and embedders that manage keys
    /// themselves). The caller should zeroize its own copy.
    pub fn from_bytes(bytes: [u8; 32]) -> MasterKey {
        MasterKey(Zeroizing::new(bytes))
    }

    /// A fresh key of 32 bytes from the operating system's RNG.
    ///
    /// # Errors
    /// [`VaultError::Random`] when the OS RNG fails.
    pub fn generate() -> Result<MasterKey, VaultError> {
        Ok(MasterKey(random_bytes::<32>()?))
    }

    /// Parses a key written as standard or URL-safe base64 of 32 bytes
    /// (padding optional) or as 64 hex characters. Surrounding whitespace
    /// is ignored.
    ///
    /// # Errors
    /// [`VaultError::InvalidMasterKey`] when the text is neither.
    pub fn parse(text: &str) -> Result<MasterKey, VaultError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(VaultError::InvalidMasterKey("empty"));
        }
        let mut key = Zeroizing::new([0u8; 32]);
        if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode_to_slice(text, &mut key[..])
                .map_err(|_| VaultError::InvalidMasterKey("not 64 hex characters"))?;
            return Ok(MasterKey(key));
        }
        let mut buf = Zeroizing::new([0u8; 48]);
        for engine in [lenient(&alphabet::STANDARD), lenient(&alphabet::URL_SAFE)] {
            if let Ok(n) = engine.decode_slice(text, &mut buf[..]) {
                if n != Self::LEN {
                    return Err(VaultError::InvalidMasterKey("base64 does not decode to 32 bytes"));
                }
                key.copy_from_slice(&buf[..32]);
                return Ok(MasterKey(key));
            }
        }
        Err(VaultError::InvalidMasterKey("expected base64 of 32 bytes or 64 hex characters"))
    }

    /// The key file path inside `data_dir`: `<data_dir>/master.key`.
    pub fn key_file_path(data_dir: &Path) -> PathBuf {
        data_dir.join(Self::FILE_NAME)
    }

    /// Loads the master key the way the CLI does: from `ORBIT_MASTER_KEY`
    /// when set, else from `<data_dir>/master.key`, else generates one and
    /// writes that file with mode 0600. See [`MasterKey::from_sources`].
    ///
    /// # Errors
    /// [`VaultError::InvalidMasterKey`] for a malformed (or non-UTF-8)
    /// variable or file, and as [`MasterKey::from_sources`].
    pub fn from_env_or_file(data_dir: &Path) -> Result<(MasterKey, MasterKeySource), VaultError> {
        let env = match std::env::var(Self::ENV_VAR) {
            Ok(v) => Some(Zeroizing::new(v)),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(VaultError::InvalidMasterKey("ORBIT_MASTER_KEY is not valid UTF-8"));
            }
        };
        Self::from_sources(env.as_deref().map(String::as_str), data_dir)
    }

    /// Loads the master key from `env` (the value of `ORBIT_MASTER_KEY`,
    /// if set) or the key file in `data_dir`, generating the file when
    /// neither exists.
    ///
    /// - `env` wins when it is `Some`, even if a key file exists.
    /// - An existing key file must not be accessible by group or others
    ///   (Unix) and must hold the key in the [`MasterKey::parse`] format.
    /// - Otherwise `data_dir` is created (mode 0700) if needed and 32 OS
    ///   random bytes are written as base64 to a new file (`create_new`,
    ///   mode 0600, fsynced along with its directory). If another process
    ///   creates the file first, that file is read instead.
    ///
    /// # Errors
    /// [`VaultError::InvalidMasterKey`] for a malformed value,
    /// [`VaultError::InsecureKeyFile`] for a group/other-accessible file,
    /// [`VaultError::KeyFile`] for I/O failures, [`VaultError::Random`]
    /// when the OS RNG fails.
    pub fn from_sources(env: Option<&str>, data_dir: &Path) -> Result<(MasterKey, MasterKeySource), VaultError> {
        if let Some(value) = env {
            return Ok((Self::parse(value)?, MasterKeySource::Env));
        }
        let path = Self::key_file_path(data_dir);
        match read_key_file(&path) {
            Ok(key) => return Ok((key, MasterKeySource::File(path))),
            Err(VaultError::KeyFile { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let key = Self::generate()?;
        match write_key_file(data_dir, &path, &key) {
            Ok(()) => Ok((key, MasterKeySource::Generated(path))),
            Err(VaultError::KeyFile { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {
                Ok((read_key_file(&path)?, MasterKeySource::File(path)))
            }
            Err(e) => Err(e),
        }
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

fn key_file_err(path: &Path) -> impl FnOnce(io::Error) -> VaultError + '_ {
    move |source| VaultError::KeyFile { path: path.to_owned(), source }
}

fn read_key_file(path: &Path) -> Result<MasterKey, VaultError> {
    let file = fs::File::open(path).map_err(key_file_err(path))?;
    let meta = file.metadata().map_err(key_file_err(path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(VaultError::InsecureKeyFile { path: path.to_owned(), mode });
        }
    }
    if meta.len() > MAX_KEY_FILE_LEN {
        return Err(VaultError::InvalidMasterKey("key file is too large"));
    }
    let mut text = Zeroizing::new(String::with_capacity(MAX_KEY_FILE_LEN as usize));
    file.take(MAX_KEY_FILE_LEN).read_to_string(&mut text).map_err(key_file_err(path))?;
    MasterKey::parse(&text)
}

fn write_key_file(data_dir: &Path, path: &Path, key: &MasterKey) -> Result<(), VaultError> {
    let mut dirs = fs::DirBuilder::new();
    dirs.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        dirs.mode(0o700);
    }
    dirs.create(data_dir).map_err(key_file_err(data_dir))?;

    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(key_file_err(path))?;
    let mut text = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(key.bytes()));
    text.push('\n');
    let written = file.write_all(text.as_bytes()).and_then(|()| file.sync_all());
    text.zeroize();
    if let Err(e) = written {
        drop(file);
        let _ = fs::remove_file(path);
        return Err(VaultError::KeyFile { path: path.to_owned(), source: e });
    }
    #[cfg(unix)]
    fs::File::open(data_dir).and_then(|d| d.sync_all()).map_err(key_file_err(data_dir))?;
    Ok(())
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([REDACTED])")
    }
}

/// A secret's plaintext value, held in a zeroizing buffer (wiped when the
/// `SecretValue` and any clone of it is dropped).
///
/// There is no `Display` and no `Serialize`; `Debug` prints
/// `SecretValue([REDACTED])`. Read it only with [`SecretValue::expose`],
/// at the point where it goes into a request.
///
/// Only this buffer is zeroized. Whatever a caller copies out of
/// [`SecretValue::expose`] (a formatted header, a URL, a request body, an
/// HTTP client's internal buffers) is outside the vault's control, as are
/// earlier buffers of a `String` that grew before being handed to
/// [`SecretValue::new`].
#[derive(Clone)]
pub struct SecretValue(Zeroizing<String>);

impl SecretValue {
    /// Wraps `value`. The `String`'s buffer is moved, not copied; any
    /// buffer it had before reallocating is not zeroized.
    pub fn new(value: String) -> SecretValue {
        SecretValue(Zeroizing::new(value))
    }

    /// The plaintext. Never log or store it. Copies made from the returned
    /// `&str` are the caller's to wipe (e.g. with [`zeroize::Zeroizing`]);
    /// the vault cannot reach them.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length of the value, in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SecretValue {
    fn from(value: String) -> Self {
        SecretValue::new(value)
    }
}

impl From<Zeroizing<String>> for SecretValue {
    fn from(value: Zeroizing<String>) -> Self {
        SecretValue(value)
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_formats() {
        let bytes: [u8; 32] = std::array::from_fn(|i| i as u8 * 7);
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let hx = hex::encode(bytes);
        for text in [b64.clone(), format!("  {b64}\n"), b64url, hx.clone(), hx.to_uppercase()] {
            assert_eq!(MasterKey::parse(&text).unwrap().bytes(), &bytes, "{text}");
        }
        for bad in ["", "abc", &hx[..62], &base64::engine::general_purpose::STANDARD.encode([1u8; 31])] {
            assert!(matches!(MasterKey::parse(bad), Err(VaultError::InvalidMasterKey(_))), "{bad}");
        }
    }
}
