//! The Postgres pool, the migrations, and telling "the database is down"
//! (503, retry later) apart from everything else.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::PgPool;

use crate::config::Settings;

/// Every migration in `migrations/`, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// A pool that connects lazily, so a service starts (and reports not-ready)
/// while Postgres is down, and that gives up quickly when it stays down:
/// commands then fail fast with 503 rather than hang.
pub fn pool(settings: &Settings) -> Result<PgPool, sqlx::Error> {
    Ok(PgPoolOptions::new()
        .max_connections(settings.database_max_connections)
        .acquire_timeout(Duration::from_millis(1500))
        .connect_lazy_with(connect_options(settings.database_url())?))
}

/// The connection options a database URL gives, with one default of our
/// own: a URL that names no `sslmode` and points at this machine (loopback
/// or a Unix socket) connects without TLS. libpq's default, `prefer`, would
/// encrypt, on both ends, traffic that never leaves the host. An explicit
/// `sslmode` always wins.
pub fn connect_options(url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    let options: PgConnectOptions = url.parse()?;
    let host = options.get_host();
    let local = host.starts_with('/')
        || host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let explicit = url.contains("sslmode=") || url.contains("ssl-mode=");
    Ok(if local && !explicit {
        options.ssl_mode(PgSslMode::Disable)
    } else {
        options
    })
}

pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// True when the error says the database cannot be reached (as opposed to a
/// query it refused): the caller should answer 503.
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        // A connection cut mid-message reads as a protocol violation.
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 57P: operator intervention (shutdown,
            // crash recovery); 53: insufficient resources.
            code.starts_with("08") || code.starts_with("57P") || code.starts_with("53")
        }),
        _ => false,
    }
}

/// Same as [`is_unavailable`] for an error that has been boxed on its way up
/// (cqrs-es and postgres-es box the sqlx errors they meet).
pub fn is_unavailable_dyn(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(sqlx_err) = e.downcast_ref::<sqlx::Error>() {
            return is_unavailable(sqlx_err);
        }
        current = e.source();
    }
    false
}

/// The highest committed global position (0 before the first event).
pub async fn head_position(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(HEAD_POSITION).fetch_one(pool).await
}

/// [`head_position`] inside a transaction.
pub async fn head_position_in(conn: &mut sqlx::PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(HEAD_POSITION).fetch_one(conn).await
}

const HEAD_POSITION: &str = "SELECT COALESCE(max(global_position), 0) FROM events";

/// This database's event-store identity (see the store-identity migration).
pub async fn store_id(pool: &PgPool) -> Result<uuid::Uuid, sqlx::Error> {
    sqlx::query_scalar("SELECT store_id FROM event_store_identity")
        .fetch_one(pool)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(url: &str) -> PgSslMode {
        connect_options(url)
            .expect("a valid database url")
            .get_ssl_mode()
    }

    fn assert_modes(cases: &[(&str, PgSslMode)]) {
        for (url, expected) in cases {
            assert_eq!(format!("{:?}", mode(url)), format!("{expected:?}"), "{url}");
        }
    }

    #[test]
    fn a_database_on_this_machine_is_reached_without_tls_unless_the_url_asks() {
        assert_modes(&[
            ("postgres://u@127.0.0.1:5432/db", PgSslMode::Disable),
            ("postgres://u@localhost/db", PgSslMode::Disable),
            ("postgres://u@[::1]:5432/db", PgSslMode::Disable),
            (
                "postgres://u@127.0.0.1/db?sslmode=require",
                PgSslMode::Require,
            ),
        ]);
    }

    #[test]
    fn a_remote_database_keeps_the_default_or_what_the_url_says() {
        assert_modes(&[
            ("postgres://u@db.internal:5432/db", PgSslMode::Prefer),
            (
                "postgres://u@10.0.0.5/db?sslmode=verify-full",
                PgSslMode::VerifyFull,
            ),
        ]);
    }
}
