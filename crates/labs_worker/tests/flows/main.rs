//! End-to-end flows of the worker crate against the real Redis, Postgres and a real SMTP
//! server (aiosmtpd): the scheduler's once-per-tick guarantee, and a job written to the
//! outbox while Redis is down, relayed when Redis is back, and delivered as an email; the
//! addresses the mailer cannot send to (`addresses`).

mod addresses;

use std::time::{Duration, Instant};

use labs_db::RedisConfig;
use labs_jobs::jobs::{Message, RelayOutbox, SendEmail};
use labs_jobs::{Handler, Job, JobQueue, JobsConfig, RuntimeConfig};
use labs_testkit::{RedisServer, SmtpServer, shared_redis_url, unique_name};
use labs_worker::WorkerContext;
use labs_worker::email::{MailConfig, Mailer};
use labs_worker::scheduler::{self, Periodic};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

fn queue_on(redis_url: &str, namespace: &str) -> JobQueue {
    let config = JobsConfig {
        jobs_namespace: namespace.to_owned(),
        worker_concurrency: 4,
        dead_job_limit: 100,
    };
    JobQueue::new(
        &SecretString::from(redis_url),
        &config,
        Duration::from_secs(2),
    )
    .unwrap()
}

fn redis_connection(url: &str) -> labs_db::RedisConnection {
    let config = RedisConfig {
        redis_url: None,
        redis_response_timeout: Duration::from_secs(2),
        redis_connect_timeout: Duration::from_secs(1),
    };
    labs_db::redis::connect_lazy(&SecretString::from(url), &config).unwrap()
}

/// A periodic job that nothing consumes, so that the queue counts how often it fired.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Tick {}

impl Job for Tick {
    const NAME: &'static str = "test_tick";
    const QUEUE: &'static str = "ticks";
}

#[tokio::test]
async fn two_schedulers_fire_each_tick_once() {
    let namespace = unique_name("scheduler");
    let queue = queue_on(&shared_redis_url(), &namespace);
    let stop = CancellationToken::new();
    let mut schedulers = Vec::new();
    for _ in 0..2 {
        let (queue, redis, namespace, stop) = (
            queue.clone(),
            redis_connection(&shared_redis_url()),
            namespace.clone(),
            stop.clone(),
        );
        schedulers.push(tokio::spawn(async move {
            scheduler::run(
                vec![Periodic::every::<Tick>("* * * * * *")],
                queue,
                redis,
                &namespace,
                stop,
            )
            .await;
        }));
    }
    tokio::time::sleep(Duration::from_millis(3500)).await;
    stop.cancel();
    for scheduler in schedulers {
        scheduler.await.unwrap();
    }

    let mut redis = redis_connection(&shared_redis_url());
    let claimed: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{namespace}:scheduler:test_tick:*"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(claimed.len() >= 2, "ticks in 3.5 s: {claimed:?}");
    let queued = queue.stats().await.unwrap().queued;
    assert_eq!(
        queued,
        claimed.len(),
        "one job per tick, though two schedulers ran"
    );
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn an_outbox_job_written_while_redis_is_down_is_emailed_once_redis_is_back(db: PgPool) {
    let smtp = SmtpServer::start();
    let mut redis = RedisServer::durable();
    let namespace = unique_name("outbox");
    let mailer = Mailer::new(&MailConfig {
        smtp_url: Some(SecretString::from(format!(
            "smtp://127.0.0.1:{}",
            smtp.port
        ))),
        mail_from: "labs <noreply@labs.test>".to_owned(),
        smtp_timeout: Duration::from_secs(5),
        smtp_ca_file: None,
    })
    .unwrap();
    let ctx = WorkerContext::new(
        labs_db::Db::like(&db),
        queue_on(&redis.url(), &namespace),
        mailer,
    );
    sqlx::query("CREATE TABLE signups (email text PRIMARY KEY)")
        .execute(&db)
        .await
        .unwrap();
    let job = SendEmail {
        to: "new.user@example.com".to_owned(),
        email: Message::test("the outbox test"),
    };

    // Redis is down when the business change commits with its job.
    redis.stop();
    let mut tx = db.begin().await.unwrap();
    sqlx::query("INSERT INTO signups (email) VALUES ('new.user@example.com')")
        .execute(&mut *tx)
        .await
        .unwrap();
    labs_jobs::outbox::enqueue(&mut tx, job.clone())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // A change that rolls back takes its job with it.
    let mut rolled_back = db.begin().await.unwrap();
    labs_jobs::outbox::enqueue(&mut rolled_back, job)
        .await
        .unwrap();
    rolled_back.rollback().await.unwrap();

    RelayOutbox::default().handle(&ctx).await.unwrap();
    assert_eq!(
        labs_jobs::outbox::pending(&db).await.unwrap(),
        1,
        "kept while Redis is down"
    );

    redis.restart();
    RelayOutbox::default().handle(&ctx).await.unwrap();
    assert_eq!(
        labs_jobs::outbox::pending(&db).await.unwrap(),
        0,
        "relayed once Redis is back"
    );
    assert_eq!(ctx.queue.stats().await.unwrap().queued, 1);

    let stop = CancellationToken::new();
    let config = RuntimeConfig {
        concurrency: 2,
        drain: Duration::from_secs(5),
    };
    let worker = tokio::spawn(labs_worker::run_worker(ctx.clone(), config, stop.clone()));
    let deadline = Instant::now() + Duration::from_secs(30);
    while smtp.messages().is_empty() {
        assert!(
            Instant::now() < deadline,
            "no email arrived at the SMTP server"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    worker.await.unwrap();

    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "exactly the committed change's email");
    let message = &messages[0];
    assert!(message.contains("To: new.user@example.com"), "{message}");
    assert!(
        message.contains("From: labs <noreply@labs.test>"),
        "{message}"
    );
    assert!(
        message.contains("Subject: labs: outgoing mail works"),
        "{message}"
    );
    assert!(message.contains("Content-Type: text/plain"), "{message}");
    assert!(message.contains("Content-Type: text/html"), "{message}");
    assert!(message.contains("the outbox test"), "{message}");
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn an_outbox_row_that_fits_no_job_type_is_kept_aside_not_lost(db: PgPool) {
    let ctx = WorkerContext::new(
        labs_db::Db::like(&db),
        queue_on(&shared_redis_url(), &unique_name("poison")),
        Mailer::new(&MailConfig {
            smtp_url: None,
            mail_from: "labs <noreply@labs.test>".to_owned(),
            smtp_timeout: Duration::from_secs(5),
            smtp_ca_file: None,
        })
        .unwrap(),
    );
    // Rows no writer of ours can make (the typed `enqueue` cannot): as a rename or a payload
    // change between releases would leave them.
    sqlx::query("INSERT INTO job_outbox (job_name, payload) VALUES ('no_such_job', '{}'), ($1, '{\"to\": 42}')")
        .bind(SendEmail::NAME)
        .execute(&db)
        .await
        .unwrap();

    RelayOutbox::default().handle(&ctx).await.unwrap();

    let errors: Vec<Option<String>> =
        sqlx::query_scalar("SELECT last_error FROM job_outbox ORDER BY id")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(errors.len(), 2, "nothing deleted");
    assert!(
        errors[0]
            .as_deref()
            .unwrap_or_default()
            .contains("no_such_job"),
        "{errors:?}"
    );
    assert!(
        errors[1]
            .as_deref()
            .unwrap_or_default()
            .contains("does not fit"),
        "{errors:?}"
    );
    assert_eq!(ctx.queue.stats().await.unwrap().queued, 0);
}

fn tls_mailer(url: String, ca_file: Option<std::path::PathBuf>) -> Mailer {
    Mailer::new(&MailConfig {
        smtp_url: Some(SecretString::from(url)),
        mail_from: "labs <noreply@labs.test>".to_owned(),
        smtp_timeout: Duration::from_secs(5),
        smtp_ca_file: ca_file,
    })
    .unwrap()
}

fn test_email() -> Message {
    Message::test("the TLS test")
}

#[tokio::test]
async fn email_goes_over_starttls_and_over_implicit_tls_and_never_to_an_untrusted_server() {
    let (dir, ca, cert, key) = labs_testkit::test_certificates();
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());

    // STARTTLS, required by the URL (and by the server).
    let starttls = SmtpServer::start_with(&["--tlscert", cert, "--tlskey", key]);
    let url = format!("smtp://localhost:{}?tls=required", starttls.port);
    tls_mailer(url.clone(), Some(ca.clone()))
        .send("tls@example.com", &test_email())
        .await
        .unwrap();
    // Without our CA the server's certificate is not trusted: nothing is sent.
    let untrusted = tls_mailer(url, None)
        .send("tls@example.com", &test_email())
        .await;
    assert!(
        untrusted.is_err(),
        "a certificate from an unknown CA must be refused"
    );
    let messages =
        tokio::task::spawn_blocking(move || starttls.wait_for_messages(1, Duration::from_secs(10)))
            .await
            .unwrap();
    assert_eq!(messages.len(), 1);
    assert!(messages[0].contains("the TLS test"));

    // TLS from the first byte (smtps).
    let smtps = SmtpServer::start_with(&["--smtpscert", cert, "--smtpskey", key]);
    let url = format!("smtps://localhost:{}", smtps.port);
    tls_mailer(url, Some(ca))
        .send("tls@example.com", &test_email())
        .await
        .unwrap();
    let messages =
        tokio::task::spawn_blocking(move || smtps.wait_for_messages(1, Duration::from_secs(10)))
            .await
            .unwrap();
    assert!(messages[0].contains("To: tls@example.com"));
    let _ = std::fs::remove_dir_all(dir);
}
