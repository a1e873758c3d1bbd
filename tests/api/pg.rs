//! The PostgreSQL test server: a schema of each test's own, a plain admin connection, and a
//! way to cut a store's connections. Tests that need it are skipped (with a notice) when
//! `SCRIPTORIUM_TEST_POSTGRES_URL` is unset, unless `SCRIPTORIUM_REQUIRE_POSTGRES=1` (`.ci/run`
//! sets it), which turns a missing or unreachable server into a failure.

const URL_VAR: &str = "SCRIPTORIUM_TEST_POSTGRES_URL";
const REQUIRE_VAR: &str = "SCRIPTORIUM_REQUIRE_POSTGRES";

/// Whether PostgreSQL tests must run rather than skip (`SCRIPTORIUM_REQUIRE_POSTGRES=1`).
fn required() -> bool {
    std::env::var(REQUIRE_VAR).as_deref() == Ok("1")
}

/// A schema of one test's own, dropped (best effort) when this is dropped.
pub(crate) struct Schema {
    /// The server's URL, without a schema.
    pub base: String,
    /// The schema's name.
    pub name: String,
}

impl Schema {
    /// A new schema, or `None` (after a notice) when no server is configured. Panics instead
    /// when PostgreSQL is required, or when the configured server cannot be reached.
    pub(crate) async fn create() -> Option<Self> {
        let Ok(base) = std::env::var(URL_VAR) else {
            assert!(
                !required(),
                "{REQUIRE_VAR}=1 but {URL_VAR} is not set; set it to a PostgreSQL server, e.g. \
                 postgres://postgres@127.0.0.1:5432/test"
            );
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
        .unwrap_or_else(|e| {
            let required = if required() {
                format!(" ({REQUIRE_VAR}=1)")
            } else {
                String::new()
            };
            panic!("the PostgreSQL test server named by {URL_VAR} is unreachable{required}: {e}")
        });
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
