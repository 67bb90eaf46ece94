//! The mailer and addresses it cannot send to: a permanent failure, dropped at once instead of
//! retried for hours, decided by the same rule the API applies at signup (`labs_domain::Email`).

use std::time::Duration;

use labs_jobs::jobs::Message;
use labs_testkit::SmtpServer;
use labs_worker::email::{MailConfig, Mailer};
use secrecy::SecretString;

#[tokio::test]
async fn an_address_the_mailer_cannot_send_to_is_dropped_not_retried_and_nothing_is_sent() {
    let smtp = SmtpServer::start();
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
    let email = Message::test("the address test");

    // `Ok`: the job is done (an `Err` would be retried with backoff for hours). The last one
    // lettre would send, to a raw IP: the API refuses it, so the mailer does too.
    for unsendable in [
        "a..b@example.com",
        "x@[127.0.0.1]",
        "x@127.0.0.1",
        "not an address",
    ] {
        mailer
            .send(unsendable, &email)
            .await
            .unwrap_or_else(|error| panic!("{unsendable:?} failed as if worth a retry: {error}"));
    }
    mailer.send("ada@example.com", &email).await.unwrap();

    let messages =
        tokio::task::spawn_blocking(move || smtp.wait_for_messages(1, Duration::from_secs(10)))
            .await
            .unwrap();
    assert_eq!(messages.len(), 1, "only the sendable address: {messages:?}");
    assert!(
        messages[0].contains("To: ada@example.com"),
        "{}",
        messages[0]
    );
}
