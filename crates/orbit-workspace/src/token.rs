//! Opaque bearer tokens: `orb_` + 32 random bytes (base64url, 43
//! characters), shown once, stored only as a SHA-256 hash, compared in
//! constant time.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Every Orbit token starts with this prefix, so secret scanners and
/// people can recognise one.
pub const TOKEN_PREFIX: &str = "orb_";

/// Random bytes in a token.
pub const TOKEN_RANDOM_BYTES: usize = 32;

/// Length of a token's text: the prefix plus 43 base64url characters.
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + 43;

/// Why a text is not a token. Deliberately says nothing about which
/// character was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenFormatError {
    /// The text does not have the shape of an Orbit token (`orb_` and 43
    /// base64url characters).
    #[error("not an Orbit token (expected orb_ followed by 43 base64url characters)")]
    Malformed,
    /// The operating system's random source failed while generating one.
    #[error("the system random source failed")]
    Random,
}

/// A token's secret text, as given to its holder once. Zeroed on drop;
/// `Debug` never shows it.
#[derive(Clone)]
pub struct TokenSecret(Zeroizing<String>);

impl TokenSecret {
    /// Generates a new token from the operating system's random source.
    ///
    /// # Errors
    /// [`TokenFormatError::Random`] when the random source fails.
    pub fn generate() -> Result<Self, TokenFormatError> {
        let mut bytes = Zeroizing::new([0u8; TOKEN_RANDOM_BYTES]);
        getrandom::fill(bytes.as_mut()).map_err(|_| TokenFormatError::Random)?;
        let mut text = Zeroizing::new(String::with_capacity(TOKEN_LEN));
        text.push_str(TOKEN_PREFIX);
        URL_SAFE_NO_PAD.encode_string(bytes.as_ref(), &mut text);
        Ok(Self(text))
    }

    /// Checks the shape of a presented token (prefix, length, alphabet).
    /// Surrounding whitespace (a trailing newline from a file) is trimmed.
    ///
    /// # Errors
    /// [`TokenFormatError::Malformed`] when it is not shaped like a token.
    pub fn parse(text: &str) -> Result<Self, TokenFormatError> {
        let text = text.trim();
        let body = text.strip_prefix(TOKEN_PREFIX).ok_or(TokenFormatError::Malformed)?;
        let ok = body.len() == TOKEN_LEN - TOKEN_PREFIX.len()
            && body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(TokenFormatError::Malformed);
        }
        Ok(Self(Zeroizing::new(text.to_owned())))
    }

    /// The token's text, to show its holder once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The hash stored in place of the token.
    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret([REDACTED])")
    }
}

/// SHA-256 of a token's text: what the store keeps. A hash of 256 random
/// bits needs no salt or slow KDF; knowing it does not let anyone present
/// the token.
#[derive(Clone, Copy, Serialize, Deserialize)]
pub struct TokenHash(#[serde(with = "hex32")] pub [u8; 32]);

impl TokenHash {
    /// Compares two hashes in constant time.
    pub fn ct_eq(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        let text: String = v.iter().map(|b| format!("{b:02x}")).collect();
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let bad = || serde::de::Error::custom("expected 64 hex digits");
        if text.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, chunk) in text.as_bytes().chunks(2).enumerate() {
            let s = std::str::from_utf8(chunk).map_err(|_| bad())?;
            out[i] = u8::from_str_radix(s, 16).map_err(|_| bad())?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_differ() {
        let a = TokenSecret::generate().unwrap();
        let b = TokenSecret::generate().unwrap();
        assert!(a.expose().starts_with(TOKEN_PREFIX));
        assert_eq!(a.expose().len(), TOKEN_LEN);
        assert_ne!(a.expose(), b.expose());
        let again = TokenSecret::parse(&format!("{}\n", a.expose())).unwrap();
        assert!(again.hash().ct_eq(&a.hash()));
        assert!(!b.hash().ct_eq(&a.hash()));
        assert!(!format!("{a:?}").contains(&a.expose()[4..]));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let good = TokenSecret::generate().unwrap();
        let body = &good.expose()[TOKEN_PREFIX.len()..];
        for bad in [
            String::new(),
            body.to_owned(),
            format!("orb-{body}"),
            format!("{}x", good.expose()),
            good.expose()[..TOKEN_LEN - 1].to_owned(),
            format!("orb_{}!", &body[..42]),
        ] {
            assert_eq!(TokenSecret::parse(&bad).unwrap_err(), TokenFormatError::Malformed, "{bad:?}");
        }
    }

    #[test]
    fn hash_round_trips_as_hex() {
        let t = TokenSecret::generate().unwrap();
        let json = serde_json::to_string(&t.hash()).unwrap();
        assert_eq!(json.len(), 66);
        let back: TokenHash = serde_json::from_str(&json).unwrap();
        assert!(back.ct_eq(&t.hash()));
    }
}
