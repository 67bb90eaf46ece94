//! The Postgres pool (`labs_db::pool`) against the real server: a connection goes back to the
//! pool untested only after work that finished cleanly, and every other way of leaving work
//! unfinished still leaves the next borrower a clean connection.
//!
//! Each test has a pool of one connection, so that the next query is sure to run on the
//! connection the previous work left behind.

use std::time::Duration;

use labs_db::Db;
use labs_db::pool::PoolSettings;
use sqlx::PgPool;

fn pool_of_one(db: &PgPool, acquire_timeout: Duration) -> Db {
    Db::new(
        (*db.connect_options()).clone(),
        PoolSettings {
            max_connections: 1,
            acquire_timeout,
            max_lifetime: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
        },
    )
}

/// How many server sessions are open on the test's database, besides `other`'s own.
async fn sessions_on_this_database(other: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_one(other)
    .await
    .unwrap()
}

async fn backend_pid(db: &Db) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(db)
        .await
        .unwrap()
}

async fn count(db: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pool_test")
        .fetch_one(db)
        .await
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn a_clean_query_leaves_the_connection_for_the_next_one(other: PgPool) {
    let db = pool_of_one(&other, Duration::from_secs(2));
    let first = backend_pid(&db).await;
    for _ in 0..5 {
        assert_eq!(backend_pid(&db).await, first);
    }
    assert_eq!(db.size(), 1);
    assert_eq!(db.num_idle(), 1);
}

#[sqlx::test(migrations = false)]
async fn a_transaction_dropped_without_commit_is_rolled_back_before_the_connection_is_lent_again(
    other: PgPool,
) {
    sqlx::query("CREATE TABLE pool_test (n int)")
        .execute(&other)
        .await
        .unwrap();
    let db = pool_of_one(&other, Duration::from_secs(2));
    {
        let mut tx = db.begin().await.unwrap();
        sqlx::query("INSERT INTO pool_test VALUES (1)")
            .execute(&mut *tx)
            .await
            .unwrap();
        // Dropped here, as a handler that returns early with `?` drops it.
    }
    // On the same connection, outside any transaction: committed at once, so another
    // connection sees it. Had the ROLLBACK not been sent, this insert would run inside the
    // abandoned transaction and stay invisible.
    sqlx::query("INSERT INTO pool_test VALUES (2)")
        .execute(&db)
        .await
        .unwrap();
    let seen: Vec<i32> = sqlx::query_scalar("SELECT n FROM pool_test ORDER BY n")
        .fetch_all(&other)
        .await
        .unwrap();
    assert_eq!(seen, [2]);

    let mut tx = db.begin().await.unwrap();
    sqlx::query("INSERT INTO pool_test VALUES (3)")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = db.begin().await.unwrap();
    sqlx::query("INSERT INTO pool_test VALUES (4)")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(count(&other).await, 2);
}

#[sqlx::test(migrations = false)]
async fn a_query_abandoned_midway_does_not_hand_its_answer_to_the_next_query(other: PgPool) {
    let db = pool_of_one(&other, Duration::from_secs(5));
    // A request cancelled (timed out, or its client gone) drops its query future mid-flight.
    let abandoned = tokio::time::timeout(
        Duration::from_millis(100),
        sqlx::query_scalar::<_, i32>("SELECT 41 FROM pg_sleep(0.3)").fetch_one(&db),
    )
    .await;
    assert!(
        abandoned.is_err(),
        "the query should still have been running"
    );
    let answer: i32 = sqlx::query_scalar("SELECT 42")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(answer, 42);
    let answer: i32 = sqlx::query_scalar("SELECT 43")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(answer, 43);
}

#[sqlx::test(migrations = false)]
async fn a_connection_killed_between_queries_fails_at_most_one_query(other: PgPool) {
    let db = pool_of_one(&other, Duration::from_secs(2));
    let killed = backend_pid(&db).await;
    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(killed)
        .fetch_one(&other)
        .await
        .unwrap();
    assert!(terminated);
    // Used again at once (no idle test): the first query may fail; it marks the connection,
    // whose test then drops it, and the next query runs on a new connection.
    let mut failures = 0;
    let replacement = loop {
        match sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
            .fetch_one(&db)
            .await
        {
            Ok(pid) => break pid,
            Err(_) if failures < 1 => failures += 1,
            Err(error) => panic!("the pool kept a dead connection: {error}"),
        }
    };
    assert_ne!(replacement, killed);
}

#[sqlx::test(migrations = false)]
async fn an_idle_connection_killed_meanwhile_is_replaced_without_a_failed_query(other: PgPool) {
    let db = pool_of_one(&other, Duration::from_secs(2));
    let killed = backend_pid(&db).await;
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(killed)
        .execute(&other)
        .await
        .unwrap();
    // Idle for longer than a second: tested on its way out, dropped, replaced.
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let replacement = backend_pid(&db).await;
    assert_ne!(replacement, killed);
}

#[sqlx::test(migrations = false)]
async fn a_caller_waits_no_longer_than_the_acquire_timeout(other: PgPool) {
    let db = pool_of_one(&other, Duration::from_millis(200));
    let held = db.begin().await.unwrap();
    let error = sqlx::query("SELECT 1").execute(&db).await.unwrap_err();
    assert!(matches!(error, sqlx::Error::PoolTimedOut), "{error:?}");
    held.commit().await.unwrap();
    sqlx::query("SELECT 1").execute(&db).await.unwrap();
}

#[sqlx::test(migrations = false)]
async fn a_closed_pool_says_so_and_ends_its_server_sessions(other: PgPool) {
    let db = pool_of_one(&other, Duration::from_secs(2));
    let pid = backend_pid(&db).await;
    db.close().await;
    let error = sqlx::query("SELECT 1").execute(&db).await.unwrap_err();
    assert!(matches!(error, sqlx::Error::PoolClosed), "{error:?}");
    // The server session ends (Terminate sent), not only the socket left to time out.
    let mut gone = false;
    for _ in 0..50 {
        let alive: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)")
                .bind(pid)
                .fetch_one(&other)
                .await
                .unwrap();
        if !alive {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "backend {pid} still there after close");
}

/// Whether the server session `pid` is idle inside a transaction (holding what it locked).
async fn idle_in_transaction(other: &PgPool, pid: i32) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state LIKE 'idle in transaction%')",
    )
    .bind(pid)
    .fetch_one(other)
    .await
    .unwrap()
}

#[sqlx::test(migrations = false)]
async fn a_dropped_transaction_releases_its_locks_without_waiting_for_the_next_borrower(
    other: PgPool,
) {
    let db = pool_of_one(&other, Duration::from_secs(2));
    let pid = backend_pid(&db).await;
    {
        let mut tx = db.begin().await.unwrap();
        sqlx::query("SELECT pg_advisory_xact_lock(4242)")
            .execute(&mut *tx)
            .await
            .unwrap();
        assert!(idle_in_transaction(&other, pid).await);
    }
    // Nobody borrows from `db` again: the rollback must still reach the server.
    let mut released = false;
    for _ in 0..100 {
        if !idle_in_transaction(&other, pid).await {
            released = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        released,
        "session {pid} still idle in its dropped transaction"
    );
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(4242)")
        .fetch_one(&other)
        .await
        .unwrap();
    assert!(locked, "the dropped transaction's lock is still held");
    assert_eq!(
        backend_pid(&db).await,
        pid,
        "the connection itself was kept"
    );
}

#[sqlx::test(migrations = false)]
async fn a_long_abandoned_statement_is_waited_for_not_left_running_beside_a_new_connection(
    other: PgPool,
) {
    let db = pool_of_one(&other, Duration::from_secs(5));
    let pid = backend_pid(&db).await;
    let abandoned = tokio::time::timeout(
        Duration::from_millis(100),
        sqlx::query("SELECT pg_sleep(1.5)").execute(&db),
    )
    .await;
    assert!(abandoned.is_err());
    // The next borrower waits for the cleanup (longer than a ping's test deadline), then gets
    // the same connection: no second session was opened while the first was still busy.
    assert_eq!(backend_pid(&db).await, pid);
    assert_eq!(db.size(), 1);
}

#[sqlx::test(migrations = false)]
async fn a_connection_lent_whole_is_closed_when_it_comes_back(other: PgPool) {
    let db = pool_of_one(&other, Duration::from_secs(2));
    let lent_pid = {
        let mut connection = db.acquire().await.unwrap();
        // What a failed migration can leave behind: a session-level lock.
        sqlx::query("SELECT pg_advisory_lock(4343)")
            .execute(&mut *connection)
            .await
            .unwrap();
        sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
            .fetch_one(&mut *connection)
            .await
            .unwrap()
    };
    assert_ne!(backend_pid(&db).await, lent_pid);
    let mut free = false;
    for _ in 0..100 {
        free = sqlx::query_scalar("SELECT pg_try_advisory_lock(4343)")
            .fetch_one(&other)
            .await
            .unwrap();
        if free {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(free, "the lent connection's session lock outlived it");
}

#[sqlx::test(migrations = false)]
async fn connections_idle_longer_than_the_idle_timeout_are_closed(other: PgPool) {
    let db = Db::new(
        (*other.connect_options()).clone(),
        PoolSettings {
            max_connections: 2,
            acquire_timeout: Duration::from_secs(2),
            max_lifetime: Duration::from_secs(60),
            idle_timeout: Duration::from_millis(600),
        },
    );
    let (first, second) = tokio::join!(db.begin(), db.begin());
    first.unwrap().commit().await.unwrap();
    second.unwrap().commit().await.unwrap();
    assert_eq!(db.size(), 2);
    let before = sessions_on_this_database(&other).await;
    assert!(before >= 2, "{before} sessions, the pool holds 2");
    let mut closed = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if db.size() == 0 && sessions_on_this_database(&other).await == before - 2 {
            closed = true;
            break;
        }
    }
    assert!(closed, "pool size {} after its idle timeout", db.size());
    // The pool still works: it opens a connection again when asked.
    assert!(backend_pid(&db).await > 0);
}
