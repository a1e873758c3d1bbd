//! The PostgreSQL test server: a schema of each test's own, a plain admin connection, and a
//! way to cut a store's connections. Tests that need it are skipped (with a notice) when
//! `SCRIPTORIUM_TEST_POSTGRES_URL` is unset.

const URL_VAR: &str = "SCRIPTORIUM_TEST_POSTGRES_URL";

/// A schema of one test's own, dropped (best effort) when this is dropped.
pub(crate) struct Schema {
    /// The server's URL, without a schema.
    pub base: String,
    /// The schema's name.
    pub name: String,
}

impl Schema {
    /// A new schema, or `None` (after a notice) when no server is configured.
    pub(crate) async fn create() -> Option<Self> {
        let Ok(base) = std::env::var(URL_VAR) else {
            println!("skipping PostgreSQL: {URL_VAR} is not set");
            return None;
        };
        let name = format!("s_{:016x}", fastrand::u64(..));
        let client = bootstrap(&base).await;
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .unwrap();
        Some(Self { base, name })
    }

    /// The URL of a store on this schema whose connections are named `<schema>_<who>`.
    pub(crate) fn url(&self, who: &str) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!(
            "{}{sep}options=-c%20search_path%3D{}&application_name={}",
            self.base,
            self.name,
            self.app(who)
        )
    }

    /// The `application_name` of the connections opened with `url(who)`.
    pub(crate) fn app(&self, who: &str) -> String {
        format!("{}_{who}", self.name)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (base, name) = (self.base.clone(), self.name.clone());
        // Drop runs inside the test's runtime, which must not be blocked on: use another.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let sql = format!("SET lock_timeout = '5s'; DROP SCHEMA IF EXISTS {name} CASCADE");
                bootstrap(&base).await.batch_execute(&sql).await
            })
        });
        if let Ok(Err(e)) = dropped.join() {
            eprintln!("could not drop the test schema: {e}");
        }
    }
}

/// A plain connection to the test server, outside any store.
pub(crate) async fn bootstrap(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("the PostgreSQL test server is reachable");
    tokio::spawn(connection);
    client
}

/// Terminates the connections of the store whose connections are named `app` (its pool's
/// and its listener's), as a PostgreSQL restart or an operator would. Answers how many.
pub(crate) async fn kill_connections(admin: &tokio_postgres::Client, app: &str) -> i64 {
    let sql = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
           AND application_name IN ($1, $1 || '-listen')";
    admin.query_one(sql, &[&app]).await.unwrap().get(0)
}
