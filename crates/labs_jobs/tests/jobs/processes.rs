//! Worker processes (this test binary re-run as `child_worker`): a thousand jobs over two apply
//! their effect once each, a job of a worker killed mid-job is finished by another, and SIGTERM
//! drains the running job and takes no more.

use std::time::{Duration, Instant};

use crate::{Work, WorkerProcess, count, create_fixture_tables, queue_on, wait_until};
use labs_testkit::{shared_redis_url, unique_name};
use sqlx::PgPool;

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn a_thousand_jobs_over_two_worker_processes_apply_their_effect_once_each(db: PgPool) {
    create_fixture_tables(&db).await;
    let (redis, namespace) = (shared_redis_url(), unique_name("thousand"));
    let queue = queue_on(&redis, &namespace);
    let _first = WorkerProcess::start(&redis, &namespace, &db, 16, Duration::from_secs(5));
    let _second = WorkerProcess::start(&redis, &namespace, &db, 16, Duration::from_secs(5));

    for n in 0..1000 {
        queue
            .enqueue(Work {
                key: format!("job-{n}"),
                sleep_ms: 1,
            })
            .await
            .unwrap();
    }

    wait_until(Duration::from_secs(90), "1000 effects", || async {
        count(&db, "SELECT COUNT(*) FROM test_effects").await == 1000
    })
    .await;
    let finished = count(
        &db,
        "SELECT COUNT(*) FROM test_runs WHERE event = 'finished'",
    )
    .await;
    assert!(
        finished >= 1000,
        "every job finished at least once: {finished}"
    );
    let processes = count(&db, "SELECT COUNT(DISTINCT pid) FROM test_effects").await;
    assert_eq!(processes, 2, "both worker processes took jobs");
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn a_worker_killed_mid_job_has_its_job_finished_by_another(db: PgPool) {
    create_fixture_tables(&db).await;
    let (redis, namespace) = (shared_redis_url(), unique_name("sigkill"));
    let queue = queue_on(&redis, &namespace);
    let victim = WorkerProcess::start(&redis, &namespace, &db, 1, Duration::from_secs(5));

    queue
        .enqueue(Work {
            key: "long".into(),
            sleep_ms: 3000,
        })
        .await
        .unwrap();
    wait_until(Duration::from_secs(20), "the job to start", || async {
        count(
            &db,
            "SELECT COUNT(*) FROM test_runs WHERE event = 'started'",
        )
        .await
            == 1
    })
    .await;
    victim.signal("KILL");
    let killed_at = Instant::now();
    let survivor = WorkerProcess::start(&redis, &namespace, &db, 1, Duration::from_secs(5));

    wait_until(
        Duration::from_secs(40),
        "the job to be finished by the other worker",
        || async { count(&db, "SELECT COUNT(*) FROM test_effects").await == 1 },
    )
    .await;
    assert!(
        killed_at.elapsed() < Duration::from_secs(30),
        "re-delivered after {:?}",
        killed_at.elapsed()
    );
    let done_by: i32 = sqlx::query_scalar("SELECT pid FROM test_effects")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(done_by, survivor.pid());
    assert_ne!(done_by, victim.pid());
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn sigterm_drains_the_running_job_and_takes_no_more(db: PgPool) {
    create_fixture_tables(&db).await;
    let (redis, namespace) = (shared_redis_url(), unique_name("drain"));
    let queue = queue_on(&redis, &namespace);
    let mut worker = WorkerProcess::start(&redis, &namespace, &db, 1, Duration::from_secs(10));

    for n in 0..3 {
        queue
            .enqueue(Work {
                key: format!("slow-{n}"),
                sleep_ms: 1500,
            })
            .await
            .unwrap();
    }
    wait_until(
        Duration::from_secs(20),
        "the first job to start",
        || async {
            count(
                &db,
                "SELECT COUNT(*) FROM test_runs WHERE event = 'started'",
            )
            .await
                == 1
        },
    )
    .await;
    worker.signal("TERM");

    let status = worker.wait(Duration::from_secs(15));
    assert!(status.success(), "{status}");
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM test_effects").await,
        1,
        "the running job finished"
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM test_runs WHERE event = 'started'"
        )
        .await,
        1,
        "no other job was taken"
    );
    assert_eq!(queue.stats().await.unwrap().queued, 2);
}
