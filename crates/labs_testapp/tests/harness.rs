//! The harness's own promises: `drain()` runs what a request left in the outbox through the
//! real worker, and a test that leaves work behind fails when its `TestApp` is dropped.

use labs_jobs::jobs::{Message, SendEmail};
use labs_testapp::TestApp;
use sqlx::PgPool;

async fn enqueue_an_email(app: &TestApp, subject: &str) {
    let job = SendEmail {
        to: "ada@example.com".to_owned(),
        email: Message::test(subject),
    };
    let mut tx = app.db.begin().await.unwrap();
    labs_jobs::outbox::enqueue(&mut tx, job).await.unwrap();
    tx.commit().await.unwrap();
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn drain_relays_the_outbox_and_runs_the_job_to_the_smtp_server(db: PgPool) {
    let app = TestApp::builder(db).smtp().spawn();
    enqueue_an_email(&app, "drained").await;
    let message = app.next_email().await;
    assert!(message.contains("drained"), "{message}");
    assert_eq!(labs_jobs::outbox::pending(&app.db).await.unwrap(), 0);
    let stats = app.queue.stats().await.unwrap();
    assert_eq!((stats.queued, stats.in_flight, stats.dead), (0, 0, 0));
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
#[should_panic(expected = "the test left work unprocessed")]
async fn a_test_that_leaves_an_outbox_row_fails(db: PgPool) {
    let app = TestApp::new(db);
    enqueue_an_email(&app, "never drained").await;
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
#[should_panic(expected = "the test left work unprocessed")]
async fn a_test_that_leaves_a_job_on_the_queue_fails(db: PgPool) {
    let app = TestApp::new(db);
    // Straight onto the queue, due in an hour: the worker leaves it, the check sees Redis too.
    let job = SendEmail {
        to: "ada@example.com".to_owned(),
        email: Message::test("later"),
    };
    app.queue
        .enqueue_in(job, std::time::Duration::from_secs(3600))
        .await
        .unwrap();
    app.drain().await;
}
