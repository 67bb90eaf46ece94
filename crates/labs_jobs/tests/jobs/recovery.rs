//! Recovery: a worker survives a Redis restart and finishes the queue, and a claim left by an
//! ended runtime is run by the next one.

use std::time::{Duration, Instant};

use crate::{
    Work, count, create_fixture_tables, queue_on, spawn_runtime, test_runtime, wait_until,
};
use labs_testkit::{RedisServer, shared_redis_url, unique_name};
use secrecy::SecretString;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn the_worker_survives_a_redis_restart_and_finishes_the_queue(db: PgPool) {
    create_fixture_tables(&db).await;
    let mut redis = RedisServer::durable();
    let queue = queue_on(&redis.url(), &unique_name("restart"));
    for n in 0..100 {
        queue
            .enqueue(Work {
                key: format!("job-{n}"),
                sleep_ms: 20,
            })
            .await
            .unwrap();
    }
    let (stop, worker) = spawn_runtime(&queue, db.clone(), 2);
    wait_until(Duration::from_secs(20), "some jobs done", || async {
        count(&db, "SELECT COUNT(*) FROM test_effects").await >= 10
    })
    .await;

    redis.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.restart();

    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let done = count(&db, "SELECT COUNT(*) FROM test_effects").await;
        if done == 100 {
            break;
        }
        // On failure, say where the jobs are, so that a flake explains itself.
        assert!(
            Instant::now() < deadline,
            "{done} of 100 done after the restart; queue: {:?}",
            queue.stats().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    worker.await.unwrap();
}

/// A runtime that ends on a Redis error may leave a claim behind: a job Redis moved to its
/// in-flight list whose reply never arrived (the flake this test replaces: 99 of 100 done, 2 in
/// flight for ever). The supervisor's next runtime must run under a name of its own, so that
/// the ended runtime's in-flight list counts as dead and its job runs again. Here the lost
/// reply is made deterministic: the claim is planted in the first runtime's list by hand, the
/// first runtime ends, and the next one, built from the same queue handle, must run the job.
#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn a_claim_left_by_an_ended_runtime_is_run_by_the_next_one(db: PgPool) {
    create_fixture_tables(&db).await;
    let namespace = unique_name("identity");
    let queue = queue_on(&shared_redis_url(), &namespace);
    let mut redis = labs_db::redis::connect_lazy(
        &SecretString::from(shared_redis_url()),
        &labs_db::RedisConfig {
            redis_url: None,
            redis_response_timeout: Duration::from_secs(2),
            redis_connect_timeout: Duration::from_secs(1),
        },
    )
    .unwrap();

    let stop_first = CancellationToken::new();
    let first = tokio::spawn(
        test_runtime(&queue, db.clone(), 2, Duration::from_secs(5)).run(stop_first.clone()),
    );
    wait_until(
        Duration::from_secs(10),
        "the first runtime registered",
        || async { queue.stats().await.is_ok_and(|stats| stats.workers == 1) },
    )
    .await;
    let processes: Vec<String> = redis::cmd("ZRANGE")
        .arg(format!("{namespace}:processes"))
        .arg(0)
        .arg(-1)
        .query_async(&mut redis)
        .await
        .unwrap();
    let [first_name] = processes.as_slice() else {
        panic!("one process registered: {processes:?}");
    };

    // A job as Redis holds it once claimed by the first runtime, whose reply was lost: its
    // payload stored, its id in the first runtime's in-flight list and in no queue.
    let id = queue
        .enqueue_in(
            Work {
                key: "left-behind".to_owned(),
                sleep_ms: 0,
            },
            Duration::from_secs(3600),
        )
        .await
        .unwrap();
    let () = redis::pipe()
        .atomic()
        .cmd("ZREM")
        .arg(format!("{namespace}:schedule"))
        .arg(&id)
        .ignore()
        .cmd("LPUSH")
        .arg(format!("{namespace}:processing:{first_name}"))
        .arg(&id)
        .ignore()
        .query_async(&mut redis)
        .await
        .unwrap();

    stop_first.cancel();
    first.await.unwrap().unwrap();
    assert_eq!(count(&db, "SELECT COUNT(*) FROM test_effects").await, 0);

    // The supervisor's next runtime on the same handle. Dead-process detection takes up to
    // DEAD_AFTER + RESURRECT_SCAN (12 s).
    let (stop, worker) = spawn_runtime(&queue, db.clone(), 2);
    wait_until(
        Duration::from_secs(40),
        "the left-behind job ran",
        || async { count(&db, "SELECT COUNT(*) FROM test_effects").await == 1 },
    )
    .await;
    stop.cancel();
    worker.await.unwrap();
    let stats = queue.stats().await.unwrap();
    assert_eq!(stats.in_flight, 0, "{stats:?}");
}
