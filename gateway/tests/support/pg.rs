//! A PostgreSQL database of its own for one test, dropped when the test ends.

use tokio_postgres::NoTls;

pub fn admin_conninfo() -> String {
    std::env::var("DOOZ_TEST_PG")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=postgres".into())
}

pub struct PgDb {
    pub name: String,
}

impl PgDb {
    pub async fn create() -> Self {
        let name = format!("dooz_it_{}", hex::encode(rand::random::<[u8; 6]>()));
        let (client, conn) = tokio_postgres::connect(&admin_conninfo(), NoTls)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL is required for this test (DOOZ_TEST_PG = {:?}): {e}",
                    admin_conninfo()
                )
            });
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        Self { name }
    }

    /// A libpq connection string for the test database.
    pub fn url(&self) -> String {
        let base = admin_conninfo();
        let without_db: Vec<&str> = base
            .split_whitespace()
            .filter(|kv| !kv.starts_with("dbname="))
            .collect();
        format!("{} dbname={}", without_db.join(" "), self.name)
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside or outside a runtime; a thread of its own works in both.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                if let Ok((client, conn)) = tokio_postgres::connect(&admin_conninfo(), NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}
