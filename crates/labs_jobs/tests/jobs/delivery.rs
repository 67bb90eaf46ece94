//! One runtime in this process: a queued job runs and applies its effect, a delayed one runs no
//! earlier than asked, a failing one retries with growing delays, then is dead and can be
//! retried.

use std::time::{Duration, Instant};

use crate::{AlwaysFails, Work, count, create_fixture_tables, queue_on, spawn_runtime, wait_until};
use labs_testkit::{shared_redis_url, unique_name};
use sqlx::PgPool;

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn a_queued_job_runs_and_applies_its_effect(db: PgPool) {
    create_fixture_tables(&db).await;
    let queue = queue_on(&shared_redis_url(), &unique_name("basic"));
    let (stop, worker) = spawn_runtime(&queue, db.clone(), 4);

    queue
        .enqueue(Work {
            key: "one".into(),
            sleep_ms: 0,
        })
        .await
        .unwrap();

    wait_until(Duration::from_secs(10), "the effect", || async {
        count(&db, "SELECT COUNT(*) FROM test_effects WHERE key = 'one'").await == 1
    })
    .await;
    stop.cancel();
    worker.await.unwrap();
    let stats = queue.stats().await.unwrap();
    assert_eq!(
        (stats.queued, stats.in_flight, stats.dead),
        (0, 0, 0),
        "{stats:?}"
    );
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn a_delayed_job_runs_no_earlier_than_asked(db: PgPool) {
    create_fixture_tables(&db).await;
    let queue = queue_on(&shared_redis_url(), &unique_name("delayed"));
    let (stop, worker) = spawn_runtime(&queue, db.clone(), 4);

    let enqueued = Instant::now();
    queue
        .enqueue_in(
            Work {
                key: "later".into(),
                sleep_ms: 0,
            },
            Duration::from_secs(2),
        )
        .await
        .unwrap();
    assert_eq!(queue.stats().await.unwrap().scheduled, 1);

    wait_until(Duration::from_secs(10), "the delayed job", || async {
        count(&db, "SELECT COUNT(*) FROM test_effects").await == 1
    })
    .await;
    assert!(
        enqueued.elapsed() >= Duration::from_secs(2),
        "ran after {:?}",
        enqueued.elapsed()
    );
    stop.cancel();
    worker.await.unwrap();
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn a_failing_job_retries_with_growing_delays_then_is_dead_and_can_be_retried(db: PgPool) {
    create_fixture_tables(&db).await;
    let queue = queue_on(&shared_redis_url(), &unique_name("retries"));
    let (stop, worker) = spawn_runtime(&queue, db.clone(), 4);

    queue
        .enqueue(AlwaysFails {
            key: "flaky".into(),
        })
        .await
        .unwrap();

    wait_until(Duration::from_secs(30), "the job to be dead", || async {
        queue.stats().await.unwrap().dead == 1
    })
    .await;
    let attempts: Vec<f64> =
        sqlx::query_scalar("SELECT EXTRACT(EPOCH FROM at)::float8 FROM test_runs ORDER BY at")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(attempts.len(), 4, "MAX_ATTEMPTS runs in all: {attempts:?}");
    let gaps: Vec<f64> = attempts.windows(2).map(|pair| pair[1] - pair[0]).collect();
    // Backoff ceilings 1 s, 2 s, 4 s with equal jitter: the delays are in [1,1], [1,2], [2,4].
    assert!(gaps[0] >= 0.9, "{gaps:?}");
    assert!(gaps[2] >= 1.9, "{gaps:?}");
    assert!(gaps[2] > gaps[0], "delays grow: {gaps:?}");

    let dead = queue.dead_jobs(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].name, "test_always_fails");
    assert_eq!(dead[0].attempts, 4);
    assert!(
        dead[0]
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("always fails"),
        "{dead:?}"
    );

    assert_eq!(queue.retry_dead().await.unwrap(), 1);
    wait_until(
        Duration::from_secs(10),
        "the retried job to run",
        || async { count(&db, "SELECT COUNT(*) FROM test_runs").await >= 5 },
    )
    .await;
    stop.cancel();
    worker.await.unwrap();
}
