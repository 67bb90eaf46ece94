//! sqlx in its own pool, sqlx's connections in deadpool's generic pool (as `labs_db::pool` has
//! them), and tokio-postgres with deadpool-postgres, on the query every authenticated request
//! runs: the live session and its account, by session id
//! (`labs_accounts::db::users::by_live_session`), decoded into the same struct. Same pool size,
//! same number of concurrent callers, prepared statements cached per connection by all three.
//! Prints queries per second and this process's CPU time per query (user + system, from
//! /proc/self/stat), which is the driver's own cost: the server's share is the same for all three.
//!
//! Usage: db-driver-spike <sqlx|sqlx-deadpool|tokio-postgres> <database url> <session id> <seconds> <pool>
//! <callers>. Without TLS (`sslmode=disable`): the spike compares the drivers' own work; what
//! TLS adds is measured on the service itself (bench/http.sh with `?sslmode=disable`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use uuid::Uuid;

const QUERY: &str = r#"SELECT u.id, u.email, u.full_name, u.is_admin, u.is_active, u.email_verified_at,
                  u.totp_enabled_at IS NOT NULL AS "totp_enabled!", u.created_at, u.updated_at
           FROM sessions s JOIN users u ON u.id = s.user_id
           WHERE s.id = $1 AND s.revoked_at IS NULL AND u.is_active"#;

#[derive(Debug, sqlx::FromRow)]
#[expect(dead_code, reason = "decoded as the service decodes it, not read")]
struct User {
    id: Uuid,
    email: String,
    full_name: Option<String>,
    is_admin: bool,
    is_active: bool,
    email_verified_at: Option<OffsetDateTime>,
    #[sqlx(rename = "totp_enabled!")]
    totp_enabled: bool,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

struct SqlxManager(sqlx::postgres::PgConnectOptions);

impl deadpool::managed::Manager for SqlxManager {
    type Type = sqlx::PgConnection;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<sqlx::PgConnection, sqlx::Error> {
        sqlx::ConnectOptions::connect(&self.0).await
    }

    async fn recycle(
        &self,
        _: &mut sqlx::PgConnection,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<sqlx::Error> {
        Ok(())
    }
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is the 12th, stime 13th.
    let rest = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|u| u.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
    // USER_HZ is 100 on Linux.
    ticks / 100.0
}

async fn run<F, Fut>(seconds: u64, callers: usize, query: F) -> anyhow::Result<()>
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<User>> + Send,
{
    // Warm up: every pooled connection opened and its statement prepared.
    let warm: Vec<_> = (0..callers)
        .map(|_| {
            let query = query.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    query().await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in warm {
        task.await??;
    }
    let done = Arc::new(AtomicU64::new(0));
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let query = query.clone();
            let done = done.clone();
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    query().await?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    let queries = done.load(Ordering::Relaxed) as f64;
    println!(
        "queries_per_s={:.0} cpu_us_per_query={:.1} queries={queries}",
        queries / elapsed,
        cpu * 1e6 / queries
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, driver, url, session, seconds, pool, callers] = args.as_slice() else {
        anyhow::bail!(
            "usage: db-driver-spike <sqlx|sqlx-deadpool|tokio-postgres> <url> <session id> <seconds> <pool> <callers>"
        );
    };
    let session: Uuid = session.parse()?;
    let seconds: u64 = seconds.parse()?;
    let pool: u32 = pool.parse()?;
    let callers: usize = callers.parse()?;
    match driver.as_str() {
        "sqlx" => {
            // As labs_db configures its pool: no ping when a connection is taken out.
            let db = sqlx::postgres::PgPoolOptions::new()
                .max_connections(pool)
                .test_before_acquire(false)
                .connect(url)
                .await?;
            run(seconds, callers, move || {
                let db = db.clone();
                async move {
                    sqlx::query_as::<_, User>(QUERY)
                        .bind(session)
                        .fetch_optional(&db)
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("no such session"))
                }
            })
            .await
        }
        "sqlx-deadpool" => {
            // sqlx's connections in a deadpool pool: sqlx's own pool pings every connection as
            // it goes back (a round trip, in a spawned task); this one hands it back as it is.
            let options: sqlx::postgres::PgConnectOptions = url.parse()?;
            let db = deadpool::managed::Pool::builder(SqlxManager(options))
                .max_size(pool as usize)
                .build()?;
            run(seconds, callers, move || {
                let db = db.clone();
                async move {
                    let mut connection: deadpool::managed::Object<SqlxManager> =
                        db.get().await.map_err(|error| anyhow::anyhow!("{error}"))?;
                    sqlx::query_as::<_, User>(QUERY)
                        .bind(session)
                        .fetch_optional(&mut *connection)
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("no such session"))
                }
            })
            .await
        }
        "tokio-postgres" => {
            let config: tokio_postgres::Config = url.parse()?;
            let manager = deadpool_postgres::Manager::from_config(
                config,
                tokio_postgres::NoTls,
                deadpool_postgres::ManagerConfig {
                    recycling_method: deadpool_postgres::RecyclingMethod::Fast,
                },
            );
            let db = deadpool_postgres::Pool::builder(manager)
                .max_size(pool as usize)
                .build()?;
            run(seconds, callers, move || {
                let db = db.clone();
                async move {
                    let client = db.get().await?;
                    let statement = client.prepare_cached(QUERY).await?;
                    let row = client
                        .query_opt(&statement, &[&session])
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("no such session"))?;
                    Ok(User {
                        id: row.try_get(0)?,
                        email: row.try_get(1)?,
                        full_name: row.try_get(2)?,
                        is_admin: row.try_get(3)?,
                        is_active: row.try_get(4)?,
                        email_verified_at: row.try_get(5)?,
                        totp_enabled: row.try_get(6)?,
                        created_at: row.try_get(7)?,
                        updated_at: row.try_get(8)?,
                    })
                }
            })
            .await
        }
        other => anyhow::bail!("unknown driver {other:?}"),
    }
}
