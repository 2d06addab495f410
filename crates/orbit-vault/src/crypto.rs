//! AES-256-GCM sealing, key derivation and AAD construction.
//!
//! - Key-encryption keys: `HKDF-SHA256(ikm = master key, salt =
//!   "orbit-vault/v1" || vault id, info = "orbit/kek/v{version}")`, id
//!   `kek-v{version}`. The vault id is 16 random bytes stored in the vault
//!   when it is created, so two vault files sharing a master key derive
//!   different KEKs. A separate HKDF output (`info =
//!   "orbit/kek-check/v{version}"`, same salt) is stored so a wrong master
//!   key is detected when the vault is opened.
//! - Every AES-GCM operation uses a fresh random 96-bit nonce from the OS
//!   RNG and an AAD made of a domain tag, the format version and
//!   length-prefixed fields, so no two field lists can encode alike.

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{AeadInPlace, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::{MasterKey, VaultError};

/// Version of the on-disk format; bound into every AAD.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// AES-GCM nonce length, in bytes (96 bits).
pub(crate) const NONCE_LEN: usize = 12;
/// AES-GCM tag length, in bytes.
pub(crate) const TAG_LEN: usize = 16;

const HKDF_SALT: &[u8] = b"orbit-vault/v1";

/// Length of a vault id, in bytes.
pub(crate) const VAULT_ID_LEN: usize = 16;
/// A vault's random id, bound into its KEKs and wrapped data keys.
pub(crate) type VaultId = [u8; VAULT_ID_LEN];
const AAD_DOMAIN: &[u8] = b"orbit-vault\0";

/// A 256-bit key in a zeroizing buffer.
pub(crate) type KeyBytes = Zeroizing<[u8; 32]>;

/// `N` bytes from the OS RNG, in a zeroizing buffer.
pub(crate) fn random_bytes<const N: usize>() -> Result<Zeroizing<[u8; N]>, VaultError> {
    let mut out = Zeroizing::new([0u8; N]);
    OsRng.try_fill_bytes(&mut out[..]).map_err(|_| VaultError::Random)?;
    Ok(out)
}

/// The id of key-encryption key `version`.
pub(crate) fn kek_id(version: u32) -> String {
    format!("kek-v{version}")
}

/// HKDF-SHA256 with salt `"orbit-vault/v1" || vault_id`. `vault_id` is a
/// [`VaultId`], or empty only to check the key of a vault made before
/// vault ids existed.
fn hkdf_expand(master: &MasterKey, vault_id: &[u8], info: &str) -> KeyBytes {
    let mut salt = Vec::with_capacity(HKDF_SALT.len() + vault_id.len());
    salt.extend_from_slice(HKDF_SALT);
    salt.extend_from_slice(vault_id);
    let hk = Hkdf::<Sha256>::new(Some(&salt), master.bytes());
    let mut okm = Zeroizing::new([0u8; 32]);
    hk.expand(info.as_bytes(), &mut okm[..]).expect("32 bytes is a valid HKDF-SHA256 output length");
    okm
}

/// Key-encryption key `version` of vault `vault_id`, derived from the
/// master key.
pub(crate) fn derive_kek(master: &MasterKey, vault_id: &VaultId, version: u32) -> KeyBytes {
    hkdf_expand(master, vault_id, &format!("orbit/kek/v{version}"))
}

/// The key-check value stored for KEK `version` (hex). Independent of the
/// KEK itself (different HKDF info), so storing it reveals nothing.
/// `vault_id` is the vault's [`VaultId`], or empty for a vault made before
/// vault ids existed.
pub(crate) fn kek_check(master: &MasterKey, vault_id: &[u8], version: u32) -> String {
    hex::encode(*hkdf_expand(master, vault_id, &format!("orbit/kek-check/v{version}")))
}

/// AAD: domain tag, format version, then each field as a 4-byte
/// big-endian length and its bytes.
pub(crate) fn aad(fields: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(AAD_DOMAIN.len() + 4 + fields.iter().map(|f| 4 + f.len()).sum::<usize>());
    out.extend_from_slice(AAD_DOMAIN);
    out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    for f in fields {
        let len = u32::try_from(f.len()).expect("AAD fields are small");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// AAD binding a wrapped data key to its vault, workspace, id and KEK id.
pub(crate) fn dek_aad(vault_id: &VaultId, workspace: &str, dek_id: &str, kek_id: &str) -> Vec<u8> {
    aad(&[b"dek", vault_id, workspace.as_bytes(), dek_id.as_bytes(), kek_id.as_bytes()])
}

/// AAD binding a secret to its workspace, name, data key id and metadata.
pub(crate) fn secret_aad(workspace: &str, name: &str, dek_id: &str, meta_json: &[u8]) -> Vec<u8> {
    aad(&[b"secret", workspace.as_bytes(), name.as_bytes(), dek_id.as_bytes(), meta_json])
}

/// Encrypts `plaintext` under `key` with a fresh random nonce. Returns the
/// nonce and ciphertext-with-tag. The plaintext is copied only into a
/// buffer that is encrypted in place.
pub(crate) fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<([u8; NONCE_LEN], Vec<u8>), VaultError> {
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
    let nonce = *random_bytes::<NONCE_LEN>()?;
    let mut buf = Zeroizing::new(Vec::with_capacity(plaintext.len() + TAG_LEN));
    buf.extend_from_slice(plaintext);
    cipher
        .encrypt_in_place(Nonce::from_slice(&nonce), aad, &mut *buf)
        .map_err(|_| VaultError::Corrupt("encryption failed".into()))?;
    // `buf` now holds only ciphertext; hand it out without zeroizing.
    Ok((nonce, std::mem::take(&mut *buf)))
}

/// Authenticates and decrypts; returns the plaintext in a zeroizing buffer
/// or `None` when authentication fails (no partial plaintext).
pub(crate) fn open(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    ciphertext: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    if ciphertext.len() < TAG_LEN {
        return None;
    }
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    cipher.decrypt_in_place(Nonce::from_slice(nonce), aad, &mut *buf).ok()?;
    Some(buf)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn seal_open_round_trip_and_aad_binding() {
        let key = [7u8; 32];
        let a = secret_aad("ws", "name", "dek-1", b"{}");
        let (nonce, ct) = seal(&key, &a, b"hello").unwrap();
        assert_eq!(ct.len(), 5 + TAG_LEN);
        assert_eq!(&open(&key, &nonce, &a, &ct).unwrap()[..], b"hello");
        assert!(open(&key, &nonce, &secret_aad("ws", "other", "dek-1", b"{}"), &ct).is_none());
        assert!(open(&key, &nonce, &secret_aad("ws2", "name", "dek-1", b"{}"), &ct).is_none());
        assert!(open(&[8u8; 32], &nonce, &a, &ct).is_none());
        assert!(open(&key, &nonce, &a, &ct[..10]).is_none());
    }

    #[test]
    fn aad_fields_are_unambiguous() {
        assert_ne!(aad(&[b"ab", b"c"]), aad(&[b"a", b"bc"]));
        assert_ne!(secret_aad("a", "bc", "d", b""), secret_aad("ab", "c", "d", b""));
    }

    const ID: VaultId = [0xA5; VAULT_ID_LEN];

    #[test]
    fn wrong_master_key_cannot_unwrap() {
        let right = MasterKey::from_bytes([1; 32]);
        let wrong = MasterKey::from_bytes([2; 32]);
        let aad = dek_aad(&ID, "ws", "dek-x", &kek_id(1));
        let (nonce, wrapped) = seal(&derive_kek(&right, &ID, 1), &aad, &[9; 32]).unwrap();
        assert!(open(&derive_kek(&right, &ID, 1), &nonce, &aad, &wrapped).is_some());
        assert!(open(&derive_kek(&wrong, &ID, 1), &nonce, &aad, &wrapped).is_none());
        assert!(open(&derive_kek(&right, &ID, 2), &nonce, &aad, &wrapped).is_none(), "versions differ");
        assert_ne!(kek_check(&right, &ID, 1), kek_check(&wrong, &ID, 1));
        assert_ne!(kek_check(&right, &ID, 1), hex::encode(*derive_kek(&right, &ID, 1)));
    }

    #[test]
    fn vault_id_separates_keks_checks_and_wraps() {
        let master = MasterKey::from_bytes([1; 32]);
        let other: VaultId = [0x5A; VAULT_ID_LEN];
        assert_ne!(*derive_kek(&master, &ID, 1), *derive_kek(&master, &other, 1));
        assert_ne!(kek_check(&master, &ID, 1), kek_check(&master, &other, 1));
        assert_ne!(kek_check(&master, &ID, 1), kek_check(&master, &[], 1));
        assert_ne!(dek_aad(&ID, "ws", "dek-x", "kek-v1"), dek_aad(&other, "ws", "dek-x", "kek-v1"));
        // A wrap made in one vault does not open in another, even when the
        // other derived the same KEK (AAD alone separates them).
        let kek = derive_kek(&master, &ID, 1);
        let (nonce, wrapped) = seal(&kek, &dek_aad(&ID, "ws", "dek-x", "kek-v1"), &[9; 32]).unwrap();
        assert!(open(&kek, &nonce, &dek_aad(&other, "ws", "dek-x", "kek-v1"), &wrapped).is_none());
        assert!(
            open(&derive_kek(&master, &other, 1), &nonce, &dek_aad(&ID, "ws", "dek-x", "kek-v1"), &wrapped).is_none()
        );
    }

    #[test]
    fn ten_thousand_nonces_are_distinct() {
        let key = [3u8; 32];
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            let (nonce, _) = seal(&key, b"aad", b"x").unwrap();
            assert!(seen.insert(nonce), "nonce repeated");
        }
    }

    proptest! {
        #[test]
        fn nonces_never_repeat(plaintexts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..256)) {
            let key = [5u8; 32];
            let mut seen = HashSet::new();
            for p in &plaintexts {
                let (nonce, ct) = seal(&key, b"aad", p).unwrap();
                prop_assert!(seen.insert(nonce));
                prop_assert_eq!(&open(&key, &nonce, b"aad", &ct).unwrap()[..], &p[..]);
            }
        }
    }
}
