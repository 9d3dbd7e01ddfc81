//! Runs a store scenario on both backends: a fresh SQLite data directory, and a fresh
//! PostgreSQL database on the local server (`SIPMETER_TEST_PG`, default
//! `postgres://postgres@127.0.0.1:5432/test`) created for the one test and dropped after it,
//! also when the test fails, so tests run in parallel without seeing each other's legs.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;
use store::Store;

/// The server's maintenance database, from which test databases are created.
pub fn admin_url() -> String {
    std::env::var("SIPMETER_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// `admin_url` with another database name.
fn url_of(db: &str) -> String {
    let admin = admin_url();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    format!("{base}/{db}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// A store on a database of its own.
pub struct TestDb {
    pub kind: Kind,
    pub store: Store,
    /// The SQLite data directory, or the PostgreSQL URL.
    pub location: String,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl TestDb {
    pub async fn new(kind: Kind) -> TestDb {
        match kind {
            Kind::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let location = dir.path().display().to_string();
                let store = Store::open(location.as_str()).await.unwrap();
                TestDb {
                    kind,
                    store,
                    location,
                    _dir: Some(dir),
                    pg_name: None,
                }
            }
            Kind::Postgres => {
                static N: AtomicU32 = AtomicU32::new(0);
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .subsec_nanos();
                let name = format!(
                    "sipmeter_t_{}_{}_{nanos}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                );
                let mut admin = sqlx::PgConnection::connect(&admin_url())
                    .await
                    .expect("PostgreSQL for the tests (SIPMETER_TEST_PG)");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .await
                    .unwrap();
                let location = url_of(&name);
                let store = Store::open(location.as_str()).await.unwrap();
                TestDb {
                    kind,
                    store,
                    location,
                    _dir: None,
                    pg_name: Some(name),
                }
            }
        }
    }

    /// Another handle on the same database (what the server's reader is, or a second
    /// process).
    pub async fn open_again(&self) -> Store {
        Store::open(self.location.as_str()).await.unwrap()
    }

    /// Runs SQL behind the store's back (a person in the sqlite3 shell or psql); the rows
    /// changed.
    pub async fn execute(&self, sql: &str) -> u64 {
        match self.kind {
            Kind::Sqlite => {
                let path = std::path::Path::new(&self.location).join(store::SQLITE_FILE_NAME);
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.busy_timeout(std::time::Duration::from_secs(10))
                    .unwrap();
                conn.execute(sql, []).unwrap() as u64
            }
            Kind::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.location).await.unwrap();
                sqlx::query(sql)
                    .execute(&mut conn)
                    .await
                    .unwrap()
                    .rows_affected()
            }
        }
    }

    /// One integer from SQL run behind the store's back.
    pub async fn query_i64(&self, sql: &str) -> i64 {
        match self.kind {
            Kind::Sqlite => {
                let path = std::path::Path::new(&self.location).join(store::SQLITE_FILE_NAME);
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.query_row(sql, [], |r| r.get(0)).unwrap()
            }
            Kind::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.location).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        // Drop cannot wait on the test's runtime; a thread with its own runtime can. FORCE
        // ends the store's own connections, which are still open here.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url()).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                }
            });
        })
        .join();
    }
}

/// Makes `mod $scenario { sqlite, postgres }`: two tests running `async fn $scenario(db:
/// TestDb)` on each backend, so a failure names the backend.
#[macro_export]
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                use super::backends::{Kind, TestDb};

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$scenario(TestDb::new(Kind::Sqlite).await).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$scenario(TestDb::new(Kind::Postgres).await).await;
                }
            }
        )*
    };
}
