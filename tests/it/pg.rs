//! PostgreSQL test helper: a throwaway database per test, so tests run in parallel without
//! seeing each other's rows.

use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

/// Admin connection used to create and drop the per-test databases. The default goes through
/// the unix socket so it works inside a network namespace that has only `lo`.
const DEFAULT_ADMIN_URL: &str = "postgres://postgres@localhost/test?host=/var/run/postgresql";

/// A freshly created, empty database that [`TempPg::drop`] removes again.
pub struct TempPg {
    /// Connection URL for the new database.
    pub url: String,
    admin_url: String,
    name: String,
    dropped: bool,
}

/// Create `rt_test_<random hex>` on the server named by `ROUNDTABLE_TEST_PG`.
pub async fn fresh_database() -> anyhow::Result<TempPg> {
    let admin_url =
        std::env::var("ROUNDTABLE_TEST_PG").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_string());
    let name = format!("rt_test_{:016x}", rand::random::<u64>());
    let mut admin = PgConnection::connect(&admin_url).await?;
    // CREATE DATABASE takes no bind parameters; the name is our own hex, so formatting is safe.
    admin
        .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await?;
    admin.close().await?;
    let url = with_database(&admin_url, &name)?;
    Ok(TempPg {
        url,
        admin_url,
        name,
        dropped: false,
    })
}

impl TempPg {
    /// Drop the database. `WITH (FORCE)` ends connections a store's pool may still hold.
    pub async fn drop(mut self) -> anyhow::Result<()> {
        self.dropped = true;
        drop_database(&self.admin_url, &self.name).await
    }
}

impl Drop for TempPg {
    /// Fallback for a test that panicked before its explicit cleanup: do the drop on a
    /// separate thread, since we may be inside a runtime that must not be blocked on.
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                let _ = runtime.block_on(drop_database(&admin_url, &name));
            }
        });
        let _ = cleanup.join();
    }
}

async fn drop_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let mut admin = PgConnection::connect(admin_url).await?;
    admin
        .execute(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .await?;
    admin.close().await?;
    Ok(())
}

/// Replace the database path of a `postgres://` URL, keeping user, host and query parameters
/// (notably `host=/var/run/postgresql`) exactly as given.
fn with_database(url: &str, database: &str) -> anyhow::Result<String> {
    let scheme_end = url
        .find("://")
        .ok_or_else(|| anyhow::anyhow!("not a postgres URL: {url}"))?
        + 3;
    let (head, query) = match url.find('?') {
        Some(q) => url.split_at(q),
        None => (url, ""),
    };
    let authority_end = head[scheme_end..]
        .find('/')
        .map_or(head.len(), |slash| scheme_end + slash);
    Ok(format!("{}/{database}{query}", &head[..authority_end]))
}

#[test]
fn with_database_keeps_host_and_params() {
    assert_eq!(
        with_database(DEFAULT_ADMIN_URL, "rt_test_ab").unwrap(),
        "postgres://postgres@localhost/rt_test_ab?host=/var/run/postgresql"
    );
    assert_eq!(
        with_database("postgres://u:p@127.0.0.1:5432", "x").unwrap(),
        "postgres://u:p@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgresql://h/db?sslmode=disable", "x").unwrap(),
        "postgresql://h/x?sslmode=disable"
    );
}
