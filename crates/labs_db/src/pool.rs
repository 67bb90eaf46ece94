//! The Postgres pool: sqlx's connections, in a pool of our own.
//!
//! **Why not sqlx's `PgPool`.** sqlx 0.9 pings every connection as it goes back to its pool
//! (`sqlx-core` `pool/connection.rs`, `return_to_pool`), in a task it spawns for the purpose: a
//! round trip to the server and a task per query, which no pool option turns off
//! (`after_release` runs beside the ping, not instead of it). Every query was two round trips,
//! and the database endpoints spent more of the shared CPU on the pool than on their query
//! (docs/PERFORMANCE.md, "The database path"). This pool hands a connection back as it is when
//! the work on it finished cleanly, and pings only the ones that may not be in a clean state.
//!
//! **What stays the same.** The connections are sqlx's `PgConnection`: every query is still a
//! compile-time-checked `sqlx::query!`, run on `&Db` (as on `&PgPool` before), on a
//! [`Transaction`], or on a `&mut PgConnection`; errors are still `sqlx::Error`, a pool that
//! has no connection free within the acquire timeout still answers `sqlx::Error::PoolTimedOut`.
//!
//! **What happens to a connection when it comes back**:
//! - after work that finished cleanly (a query on `&Db` that answered, a transaction committed
//!   or rolled back): back into the pool as it is, no round trip;
//! - after work that did not (a query that failed, or whose future was dropped midway because
//!   the request was cancelled or timed out; a transaction dropped without commit, whose
//!   `ROLLBACK` is queued): a task of its own finishes the conversation (a ping: sends what is
//!   queued and waits until the server is ready again) *before* the connection goes back, so
//!   that no session sits idle in a transaction holding its locks, and no borrower waits for
//!   someone else's abandoned statement; a connection that fails that, or takes longer than
//!   [`CLEANUP_DEADLINE`], is closed;
//! - after a `BEGIN` that never answered (cancelled midway: sqlx cannot tell whether the server
//!   is now inside a transaction), or a connection lent with [`Db::acquire`] (its session may
//!   hold settings or a session-level advisory lock, as a failed migration leaves): closed, never
//!   lent again.
//!
//! **When a connection is tested on its way out** (a ping, under [`TEST_DEADLINE`]; one that
//! fails is closed and the next one, or a new one, is tried): after it sat idle for more than a
//! second (a server restart or a dropped link in between). Otherwise never: a connection killed
//! between two queries fails one query, which sends it to the cleanup above, which closes it.
//! The pool lends the most recently returned connection first (LIFO), so that under light load
//! the same few connections stay warm and untested while the rest age out (`idle_timeout`).
//!
//! Alternatives rejected: tokio-postgres with deadpool-postgres (faster still in the driver
//! spike, but it gives up sqlx's compile-time-checked queries, `#[sqlx::test]` and the
//! migrator: a rewrite of the whole data layer); patching sqlx's pool (a fork to maintain).
//! deadpool's generic pool is already in the tree (deadpool-redis).

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use futures_util::TryStreamExt as _;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use sqlx::postgres::{
    PgConnectOptions, PgQueryResult, PgRow, PgStatement, PgTransactionManager, PgTypeInfo,
};
use sqlx::{
    ConnectOptions as _, Connection as _, Either, Execute, Executor, PgConnection, Postgres,
};
use sqlx_core::ext::async_stream::TryAsyncStream;
use sqlx_core::sql_str::SqlStr;
use sqlx_core::transaction::TransactionManager as _;

/// A connection that sat idle longer than this is pinged before it is lent again.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);
/// How long the test of an idle connection may take before the pool closes it and tries
/// another: a healthy server answers a ping in well under a millisecond.
pub const TEST_DEADLINE: Duration = Duration::from_secs(1);
/// How long the cleanup of a connection whose work was abandoned may wait for the server. Longer
/// than the default `statement_timeout` (10 s, `LABS_DB_STATEMENT_TIMEOUT`): an abandoned
/// statement is waited for, not left running on the server beside a replacement connection
/// (which, with requests timing out repeatedly, would take the server past its
/// `max_connections`). The slot stays taken meanwhile, as with sqlx's own pool.
pub const CLEANUP_DEADLINE: Duration = Duration::from_secs(30);

/// How a pool is sized and timed.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: usize,
    /// How long a caller waits for a connection (a free one, or a new one being opened).
    pub acquire_timeout: Duration,
    /// A connection older than this is closed instead of lent again (so that a failover or a
    /// server-side setting change is picked up).
    pub max_lifetime: Duration,
    /// An idle connection unused for this long is closed (checked every minute, or every half
    /// of this if that is shorter).
    pub idle_timeout: Duration,
}

impl PoolSettings {
    /// `max_connections` and `acquire_timeout` as given; connections recycled after 30 minutes
    /// (so that a failover or a server-side setting change is picked up) and closed after 10
    /// idle minutes.
    pub fn new(max_connections: usize, acquire_timeout: Duration) -> Self {
        Self {
            max_connections,
            acquire_timeout,
            max_lifetime: Duration::from_secs(30 * 60),
            idle_timeout: Duration::from_secs(10 * 60),
        }
    }
}

/// The Postgres pool. Cheap to clone (one `Arc`); `&Db` is a sqlx executor.
#[derive(Clone)]
pub struct Db {
    pool: managed::Pool<Manager>,
    settings: Arc<PoolSettings>,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.pool.status();
        f.debug_struct("Db")
            .field("size", &status.size)
            .field("available", &status.available)
            .field("max_connections", &self.settings.max_connections)
            .finish()
    }
}

/// A pooled connection and the state the work done on it left it in.
struct PooledConnection {
    raw: PgConnection,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The last work on it finished: lend it again as it is.
    Clean,
    /// Work on it may have stopped midway: finish the conversation before lending it again.
    Unfinished,
    /// Its session may not be what a borrower expects (a `BEGIN` without its answer, or lent
    /// out whole): close it.
    Retire,
}

struct Manager {
    options: PgConnectOptions,
    max_lifetime: Duration,
}

impl managed::Manager for Manager {
    type Type = PooledConnection;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<PooledConnection, sqlx::Error> {
        Ok(PooledConnection {
            // Boxed, like the ping below: a connect future is kilobytes (TLS, authentication)
            // and would otherwise sit inline in every `get` future, copied at each move.
            raw: Box::pin(self.options.connect()).await?,
            state: State::Clean,
        })
    }

    async fn recycle(
        &self,
        connection: &mut PooledConnection,
        metrics: &Metrics,
    ) -> RecycleResult<sqlx::Error> {
        if metrics.age() > self.max_lifetime {
            return Err(RecycleError::message("older than the pool's max lifetime"));
        }
        // Connections come back Clean (see `Connection`'s drop); the other states are checked
        // again here for a connection returned where no runtime could run its cleanup.
        if connection.state == State::Retire {
            return Err(RecycleError::message("its session state is unknown"));
        }
        if connection.state == State::Unfinished || metrics.last_used() > PING_IF_IDLE_FOR {
            match Box::pin(tokio::time::timeout(TEST_DEADLINE, connection.raw.ping())).await {
                Ok(Ok(())) => connection.state = State::Clean,
                Ok(Err(error)) => {
                    tracing::debug!(%error, "dropping a pooled Postgres connection that failed its test");
                    return Err(RecycleError::Backend(error));
                }
                Err(_elapsed) => {
                    return Err(RecycleError::message("test took longer than its deadline"));
                }
            }
        }
        Ok(())
    }
}

/// A connection out of the pool; goes back when dropped (see the module docs for what
/// happens to it then).
pub struct Connection(Option<managed::Object<Manager>>);

impl Connection {
    fn pooled(&mut self) -> &mut PooledConnection {
        self.0.as_mut().expect("present until dropped")
    }

    fn mark(&mut self, state: State) {
        self.pooled().state = state;
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let Some(object) = self.0.take() else { return };
        let closed = managed::Object::pool(&object).is_none_or(|pool| pool.is_closed());
        let state = if closed { State::Retire } else { object.state };
        if state == State::Clean {
            return; // Back into the pool by the object's own drop.
        }
        // Without a runtime (a process shutting down) the object goes back as it is, and the
        // pool's recycle check deals with it before it is lent again.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let mut object = object;
            if state == State::Unfinished {
                match tokio::time::timeout(CLEANUP_DEADLINE, object.raw.ping()).await {
                    Ok(Ok(())) => {
                        object.state = State::Clean;
                        return;
                    }
                    Ok(Err(error)) => {
                        tracing::debug!(%error, "closing a Postgres connection whose work was abandoned and that failed its cleanup");
                    }
                    Err(_elapsed) => {
                        tracing::warn!(deadline = ?CLEANUP_DEADLINE, "closing a Postgres connection whose abandoned work the server did not finish in time");
                    }
                }
            }
            let pooled = managed::Object::take(object);
            let _ = tokio::time::timeout(TEST_DEADLINE, pooled.raw.close()).await;
        });
    }
}

impl Deref for Connection {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.0.as_ref().expect("present until dropped").raw
    }
}

impl DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.pooled().raw
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.0.as_ref().map(|object| object.state);
        f.debug_struct("Connection").field("state", &state).finish()
    }
}

impl Db {
    /// A pool that opens connections with `options` when they are first needed.
    ///
    /// Must be called within a Tokio runtime: it starts the task that closes idle connections.
    pub fn new(options: PgConnectOptions, settings: PoolSettings) -> Self {
        let manager = Manager {
            options,
            max_lifetime: settings.max_lifetime,
        };
        // No timeouts of deadpool's: `Db::get` bounds the whole of a `get` by the acquire
        // timeout, and the test of an idle connection has its own deadline (`recycle`). Each
        // deadpool timeout is one more timer and future around every `get`, taken or not.
        let timeouts = managed::Timeouts::new();
        let pool = managed::Pool::builder(manager)
            .max_size(settings.max_connections)
            .queue_mode(managed::QueueMode::Lifo)
            .timeouts(timeouts)
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .expect("a runtime and timeouts are set, which is all the builder checks");
        let db = Self {
            pool,
            settings: Arc::new(settings),
        };
        db.close_idle_connections();
        db
    }

    /// A pool of up to `max_connections` over the same database as a sqlx pool: for tests,
    /// whose per-test database `#[sqlx::test]` hands over as a `sqlx::PgPool`.
    pub fn like(pool: &sqlx::PgPool) -> Self {
        Self::new(
            (*pool.connect_options()).clone(),
            PoolSettings::new(
                pool.options().get_max_connections() as usize,
                pool.options().get_acquire_timeout(),
            ),
        )
    }

    fn close_idle_connections(&self) {
        let pool = self.pool.weak();
        let idle_timeout = self.settings.idle_timeout;
        let every = (idle_timeout / 2).clamp(Duration::from_millis(100), Duration::from_secs(60));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(pool) = pool.upgrade() else { return };
                let removed = pool
                    .retain(|_, metrics| metrics.last_used() < idle_timeout)
                    .removed;
                drop(pool);
                for connection in removed {
                    let _ = tokio::time::timeout(TEST_DEADLINE, connection.raw.close()).await;
                }
            }
        });
    }

    /// A connection of the pool's, for work of several statements outside a transaction (a
    /// migration, which takes a session-level advisory lock). Closed when dropped, never lent
    /// again: the pool cannot see what its session was left holding.
    pub async fn acquire(&self) -> Result<Connection, sqlx::Error> {
        let mut connection = self.get().await?;
        connection.mark(State::Retire);
        Ok(connection)
    }

    /// Begins a transaction on a connection of the pool's. Dropped without [`Transaction::commit`],
    /// it rolls back.
    pub async fn begin(&self) -> Result<Transaction, sqlx::Error> {
        let mut connection = self.get().await?;
        // Until BEGIN has answered, the server may or may not be inside a transaction, and
        // sqlx's own bookkeeping (the depth it keeps) says not: a connection whose BEGIN was
        // cancelled or failed is closed, not lent again.
        connection.mark(State::Retire);
        PgTransactionManager::begin(&mut connection, None).await?;
        connection.mark(State::Unfinished);
        Ok(Transaction {
            connection,
            open: true,
        })
    }

    async fn get(&self) -> Result<Connection, sqlx::Error> {
        let got = tokio::time::timeout(self.settings.acquire_timeout, self.pool.get()).await;
        match got {
            Err(_elapsed) => Err(sqlx::Error::PoolTimedOut),
            Ok(Ok(object)) => Ok(Connection(Some(object))),
            Ok(Err(managed::PoolError::Timeout(_))) => Err(sqlx::Error::PoolTimedOut),
            Ok(Err(managed::PoolError::Backend(error))) => Err(error),
            Ok(Err(managed::PoolError::Closed)) => Err(sqlx::Error::PoolClosed),
            Ok(Err(other)) => Err(sqlx::Error::Protocol(other.to_string())),
        }
    }

    /// What the pool's connections are opened with.
    pub fn connect_options(&self) -> &PgConnectOptions {
        &self.pool.manager().options
    }

    /// Connections open now, lent out or idle.
    pub fn size(&self) -> usize {
        self.pool.status().size
    }

    /// Connections open and idle now.
    pub fn num_idle(&self) -> usize {
        self.pool.status().available
    }

    pub fn max_connections(&self) -> usize {
        self.settings.max_connections
    }

    /// Closes the idle connections (telling the server), and every other one as it comes back;
    /// later calls get `sqlx::Error::PoolClosed`.
    pub async fn close(&self) {
        self.pool.close();
        let removed = self.pool.retain(|_, _| false).removed;
        for connection in removed {
            let _ = tokio::time::timeout(TEST_DEADLINE, connection.raw.close()).await;
        }
    }

    /// Runs one piece of work on a pooled connection, marking it clean only if the work ran to
    /// its end without an error (a dropped future leaves it marked for the cleanup).
    async fn run<T>(
        &self,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        let mut connection = self.get().await?;
        connection.mark(State::Unfinished);
        let result = work(&mut connection).await;
        if result.is_ok() {
            connection.mark(State::Clean);
        }
        result
    }
}

impl From<sqlx::PgPool> for Db {
    /// [`Db::like`].
    fn from(pool: sqlx::PgPool) -> Self {
        Self::like(&pool)
    }
}

/// A transaction on a pooled connection; `&mut *tx` is a `&mut PgConnection`.
pub struct Transaction {
    connection: Connection,
    open: bool,
}

impl Transaction {
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        PgTransactionManager::commit(&mut self.connection).await?;
        self.open = false;
        self.connection.mark(State::Clean);
        Ok(())
    }

    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        PgTransactionManager::rollback(&mut self.connection).await?;
        self.open = false;
        self.connection.mark(State::Clean);
        Ok(())
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if self.open {
            // Queues the ROLLBACK; the connection is still marked unfinished, so its cleanup
            // sends it and waits for the answer before the connection goes back.
            PgTransactionManager::start_rollback(&mut self.connection);
        }
    }
}

impl Deref for Transaction {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.connection
    }
}

impl DerefMut for Transaction {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.connection
    }
}

impl fmt::Debug for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("open", &self.open)
            .finish()
    }
}

impl<'p> Executor<'p> for &'_ Db {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let db = self.clone();
        Box::pin(TryAsyncStream::new(move |yielder| async move {
            let mut connection = db.get().await?;
            connection.mark(State::Unfinished);
            {
                let mut rows = connection.fetch_many(query);
                while let Some(row) = rows.try_next().await? {
                    yielder.r#yield(row).await;
                }
            }
            connection.mark(State::Clean);
            Ok(())
        }))
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let db = self.clone();
        Box::pin(async move { db.run(async |c| c.fetch_optional(query).await).await })
    }

    fn execute<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<PgQueryResult, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let db = self.clone();
        Box::pin(async move { db.run(async |c| c.execute(query).await).await })
    }

    fn fetch_all<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Vec<PgRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let db = self.clone();
        Box::pin(async move { db.run(async |c| c.fetch_all(query).await).await })
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement, sqlx::Error>>
    where
        'p: 'e,
    {
        let db = self.clone();
        Box::pin(async move {
            db.run(async |c| c.prepare_with(sql, parameters).await)
                .await
        })
    }

    fn describe<'e>(
        self,
        sql: SqlStr,
    ) -> BoxFuture<'e, Result<sqlx::Describe<Postgres>, sqlx::Error>>
    where
        'p: 'e,
    {
        let db = self.clone();
        Box::pin(async move { db.run(async |c| c.describe(sql).await).await })
    }
}
