//! Secrets at rest. A webhook secret must be read back to verify a delivery
//! (most providers sign with an HMAC under it), so it cannot be kept as a
//! hash: it is sealed with XChaCha20-Poly1305 under the key of
//! `SEXTANT_SECRETS_KEY`, which never enters the database. Each sealed value
//! is bound to where it belongs (the associated data: client and provider),
//! so a sealed value copied to another row does not open.
//!
//! Two keys are derived from the one of the setting (HMAC-SHA256 under
//! distinct labels): one seals, one makes fingerprints. A fingerprint is
//! keyed, so the event log, which keeps it for good, cannot be used to test
//! guesses of a secret. The key's id (derived as well, not secret) is kept
//! beside each sealed value, so that a value sealed under another key is
//! told apart from a damaged one.
//!
//! A sealed value: one format byte, the 24-byte random nonce, then the
//! ciphertext with its 16-byte tag.

use std::sync::Arc;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The first byte of a sealed value: its format.
const FORMAT: u8 = 1;
const NONCE_LEN: usize = 24;

/// The key that seals secrets at rest. Cheap to clone; its bytes never show
/// in `Debug` output.
#[derive(Clone)]
pub struct SecretsKey {
    inner: Arc<Inner>,
}

struct Inner {
    cipher: XChaCha20Poly1305,
    fingerprints: [u8; 32],
    id: String,
    /// A random secret sealed under this key, for [`SecretsKey::open_decoy`].
    decoy: Vec<u8>,
}

/// Where the decoy belongs: no client's and provider's context is this.
const DECOY_CONTEXT: &[u8] = b"sextant secrets: decoy";

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsKey")
            .field("id", &self.inner.id)
            .finish_non_exhaustive()
    }
}

/// A value that could not be sealed (only a plaintext of gigabytes is).
#[derive(Debug, thiserror::Error)]
#[error("the secret could not be sealed")]
pub struct SealError;

const KEY_FORMAT: &str = "must be 32 bytes, written as 64 hex digits or in base64";

impl SecretsKey {
    /// The key written as 64 hex digits or in base64 (standard or URL-safe,
    /// padded or not).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).map_err(|_| KEY_FORMAT.to_owned())?
        } else {
            use base64::engine::general_purpose::{
                STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
            };
            [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
                .iter()
                .find_map(|engine| engine.decode(text).ok())
                .ok_or_else(|| KEY_FORMAT.to_owned())?
        };
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| format!("{KEY_FORMAT} (got {} bytes)", b.len()))?;
        Ok(Self::from_bytes(&key))
    }

    pub fn from_bytes(key: &[u8; 32]) -> Self {
        let seal = derive(key, b"sextant secrets: seal");
        let fingerprints = derive(key, b"sextant secrets: fingerprint");
        let id = hex::encode(&derive(key, b"sextant secrets: key id")[..8]);
        let mut key = Self {
            inner: Arc::new(Inner {
                cipher: XChaCha20Poly1305::new(Key::from_slice(&seal)),
                fingerprints,
                id,
                decoy: Vec::new(),
            }),
        };
        // As long as the secrets `up.sh` and the providers' consoles
        // generate (43 characters).
        let decoy_secret = hex::encode(rand::random::<[u8; 22]>());
        let decoy = key
            .seal(&decoy_secret.as_bytes()[..43], DECOY_CONTEXT)
            .unwrap_or_default();
        if let Some(inner) = Arc::get_mut(&mut key.inner) {
            inner.decoy = decoy;
        }
        key
    }

    /// Opens a secret sealed under this key that belongs to no one: the
    /// work of opening a stored secret, for a delivery whose client has
    /// none, so that how long a refusal takes does not tell whether a
    /// secret is stored.
    pub fn open_decoy(&self) -> Option<Vec<u8>> {
        self.open(&self.inner.decoy, DECOY_CONTEXT)
    }

    /// A fresh random key, as 64 hex digits (what `SEXTANT_SECRETS_KEY`
    /// takes).
    pub fn generate() -> String {
        hex::encode(rand::random::<[u8; 32]>())
    }

    /// The key's public id: 16 hex digits, the same for the same key.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// `plaintext` sealed for `context` (where it belongs: only the same
    /// context opens it).
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, SealError> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let ciphertext = self
            .inner
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .map_err(|_| SealError)?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        sealed.push(FORMAT);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    /// What [`seal`](Self::seal) sealed for `context`; `None` when the value
    /// was sealed under another key or for another context, or is damaged.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Option<Vec<u8>> {
        let (&format, rest) = sealed.split_first()?;
        if format != FORMAT || rest.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        self.inner
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
            .ok()
    }

    /// A short fingerprint of `secret`: 16 hex digits of an HMAC under a key
    /// derived from this one. The same secret has the same fingerprint under
    /// the same key; without the key, a fingerprint says nothing of its
    /// secret.
    pub fn fingerprint(&self, secret: &[u8]) -> String {
        hex::encode(&mac(&self.inner.fingerprints, secret)[..8])
    }
}

fn mac(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length, so `new_from_slice` cannot fail here;
    // the fallback only keeps this free of a panic path.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        return [0; 32];
    };
    mac.update(message);
    mac.finalize().into_bytes().into()
}

fn derive(key: &[u8; 32], label: &[u8]) -> [u8; 32] {
    mac(key, label)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn a_key_opens_its_decoy_and_no_one_elses_context_opens_it() {
        let key = SecretsKey::from_bytes(&[7; 32]);
        let decoy = key.open_decoy().expect("the decoy opens");
        assert_eq!(decoy.len(), 43, "as long as a generated secret");
        assert!(key.open(&key.inner.decoy, b"client|smartlead").is_none());
        let other = SecretsKey::from_bytes(&[7; 32]);
        assert_ne!(other.open_decoy(), Some(decoy), "a random decoy per key");
    }

    #[test]
    fn a_key_is_read_from_hex_or_base64_and_must_be_32_bytes() {
        let bytes: Vec<u8> = (0u8..32).collect();
        let from_hex = SecretsKey::parse(HEX).expect("64 hex digits");
        let from_base64 =
            SecretsKey::parse(&base64::engine::general_purpose::STANDARD.encode(&bytes))
                .expect("base64");
        let from_url_safe =
            SecretsKey::parse(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes))
                .expect("unpadded URL-safe base64");
        assert_eq!(from_hex.id(), from_base64.id());
        assert_eq!(from_hex.id(), from_url_safe.id());
        for bad in [
            "",
            "short",
            &HEX[..62],
            &format!("{HEX}00"),
            "not base64 at all!",
        ] {
            assert!(
                SecretsKey::parse(bad).is_err(),
                "{bad:?} was taken for a key"
            );
        }
    }

    #[test]
    fn a_sealed_secret_opens_only_under_its_key_and_context() {
        let key = SecretsKey::parse(HEX).expect("a key");
        let other = SecretsKey::parse(&SecretsKey::generate()).expect("a generated key");
        let sealed = key
            .seal(b"s3cr3t-of-16-chars", b"webhook:a:smartlead")
            .expect("sealed");
        assert!(!sealed.windows(6).any(|w| w == b"s3cr3t"));
        assert_eq!(
            key.open(&sealed, b"webhook:a:smartlead").as_deref(),
            Some(&b"s3cr3t-of-16-chars"[..])
        );
        assert_eq!(key.open(&sealed, b"webhook:b:smartlead"), None);
        assert_eq!(other.open(&sealed, b"webhook:a:smartlead"), None);
        let mut damaged = sealed.clone();
        if let Some(last) = damaged.last_mut() {
            *last ^= 1;
        }
        assert_eq!(key.open(&damaged, b"webhook:a:smartlead"), None);
        assert_eq!(key.open(&[], b"webhook:a:smartlead"), None);
        assert_eq!(key.open(&sealed[..10], b"webhook:a:smartlead"), None);
        assert_ne!(
            sealed,
            key.seal(b"s3cr3t-of-16-chars", b"webhook:a:smartlead")
                .expect("sealed again"),
            "every seal has its own nonce"
        );
    }

    #[test]
    fn fingerprints_are_keyed_and_the_key_never_shows() {
        let key = SecretsKey::parse(HEX).expect("a key");
        let other = SecretsKey::parse(&SecretsKey::generate()).expect("a generated key");
        let fingerprint = key.fingerprint(b"a-webhook-secret");
        assert_eq!(fingerprint.len(), 16);
        assert_eq!(fingerprint, key.fingerprint(b"a-webhook-secret"));
        assert_ne!(fingerprint, other.fingerprint(b"a-webhook-secret"));
        assert_ne!(
            fingerprint,
            crate::keys::sha256_hex("a-webhook-secret")[..16],
            "not the plain hash of the secret"
        );
        let shown = format!("{key:?}");
        assert!(
            !shown.contains(HEX) && !shown.contains("0001020304"),
            "{shown}"
        );
        assert!(shown.contains(key.id()));
    }
}
