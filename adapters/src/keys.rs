//! API keys: `sxk_<key id>_<secret>`. Only the SHA-256 of the secret is ever
//! stored (in the `ApiKeyIssued` event and the key registry); the key is
//! shown once, when issued.
//!
//! The registry (`client_api_keys`) is a read model the `clients` projection
//! maintains. The command API also writes a key's issue and revocation there
//! right after the command commits (an after-commit handler, idempotent and
//! replay-safe), so a revoked key stops working at once even while the
//! stream lags.

use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::{PgExecutor, Row};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use sextant_domain::values::Role;

const PREFIX: &str = "sxk_";

/// A fresh random secret, 256 bits, hex.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A newly minted key: the full key to show once, its id and its hash.
pub struct NewKey {
    pub key_id: Uuid,
    pub key: String,
    pub hash: String,
}

pub fn mint() -> NewKey {
    let key_id = Uuid::new_v4();
    let secret = random_secret();
    NewKey {
        key_id,
        key: format!("{PREFIX}{}_{secret}", key_id.simple()),
        hash: sha256_hex(&secret),
    }
}

/// Splits a presented key into its id and secret; `None` if it is not shaped
/// like one of ours.
pub fn parse(key: &str) -> Option<(Uuid, &str)> {
    let rest = key.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    if secret.len() != 64 {
        return None;
    }
    Some((Uuid::try_parse(id).ok()?, secret))
}

/// Compares without an early exit, so timing tells nothing about how much of
/// a guess was right (only whether its length was).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// A key as the registry knows it.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub key_id: Uuid,
    pub client_id: Uuid,
    pub role: Role,
    pub key_hash: String,
    pub revoked: bool,
}

pub async fn find<'e>(
    db: impl PgExecutor<'e>,
    key_id: Uuid,
) -> Result<Option<KeyRecord>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT key_id, client_id, role, key_hash, revoked_at IS NOT NULL AS revoked \
         FROM client_api_keys WHERE key_id = $1",
    )
    .bind(key_id)
    .fetch_optional(db)
    .await?;
    row.map(|r| {
        let role: String = r.try_get("role")?;
        Ok(KeyRecord {
            key_id: r.try_get("key_id")?,
            client_id: r.try_get("client_id")?,
            role: role_of(&role)?,
            key_hash: r.try_get("key_hash")?,
            revoked: r.try_get("revoked")?,
        })
    })
    .transpose()
}

/// A registry row's role. One the domain does not know is an error, not a
/// guess: reading it as some role would grant that role's rights.
fn role_of(text: &str) -> Result<Role, sqlx::Error> {
    Role::parse(text).ok_or_else(|| {
        sqlx::Error::Decode(format!("client_api_keys.role: unknown role {text:?}").into())
    })
}

/// Idempotent: a key already known is left as it is.
pub async fn record_issued<'e>(
    db: impl PgExecutor<'e>,
    key_id: Uuid,
    client_id: Uuid,
    role: Role,
    label: &str,
    key_hash: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO client_api_keys (key_id, client_id, role, label, key_hash, issued_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key_id) DO NOTHING",
    )
    .bind(key_id)
    .bind(client_id)
    .bind(role.as_str())
    .bind(label)
    .bind(key_hash)
    .bind(at)
    .execute(db)
    .await?;
    Ok(())
}

/// Idempotent: the first revocation time stands.
pub async fn record_revoked<'e>(
    db: impl PgExecutor<'e>,
    key_id: Uuid,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE client_api_keys SET revoked_at = $2 WHERE key_id = $1 AND revoked_at IS NULL",
    )
    .bind(key_id)
    .bind(at)
    .execute(db)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_key_parses_back_to_its_id_and_hashes_to_its_hash() {
        let key = mint();
        let (id, secret) = parse(&key.key).expect("a minted key parses");
        assert_eq!(id, key.key_id);
        assert_eq!(sha256_hex(secret), key.hash);
        assert!(!key.key.contains(&key.hash));
    }

    #[test]
    fn malformed_keys_do_not_parse() {
        for bad in [
            "",
            "sxk_",
            "sxk_nothex_abc",
            "Bearer x",
            &format!("sxk_{}_short", Uuid::nil().simple()),
        ] {
            assert!(parse(bad).is_none(), "{bad} parsed");
        }
    }

    #[test]
    fn constant_time_eq_compares_whole_values() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn a_registry_row_with_an_unknown_role_is_an_error_not_a_reader() {
        for role in [Role::Admin, Role::Reviewer, Role::Ingest, Role::Reader] {
            assert_eq!(role_of(role.as_str()).ok(), Some(role));
        }
        for bad in ["", "Admin", "owner", " reader"] {
            let err = role_of(bad).expect_err("an unknown role is refused");
            assert!(err.to_string().contains("unknown role"), "{bad:?}: {err}");
        }
    }
}
