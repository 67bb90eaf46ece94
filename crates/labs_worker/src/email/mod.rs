//! Email: the SMTP transport (or the log, in development), the templates, the cap on what
//! one address receives, and the `send_email` job's handler.

mod templates;

use std::time::Duration;

use labs_db::RedisConnection;
use labs_db::ratelimit::{self, Decision, Quota};
use labs_jobs::jobs::SendEmail;
use labs_jobs::{Handler, JobError};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

use crate::WorkerContext;

/// How the worker sends email.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Email")]
pub struct MailConfig {
    /// SMTP server URL, with the TLS mode in it: `smtps://user:pass@host:465` (TLS from the
    /// first byte), `smtp://user:pass@host:587?tls=required` (STARTTLS, refused without it),
    /// `smtp://host:25` (plain, for a local relay only). Not set in development: messages are
    /// written to the log instead of sent. Required in production.
    #[arg(long, env = "LABS_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<SecretString>,

    /// A PEM file of extra root certificates to trust for the SMTP server's TLS certificate,
    /// for a relay with a private CA. The system's roots are trusted either way.
    #[arg(long, env = "LABS_SMTP_CA_FILE")]
    pub smtp_ca_file: Option<std::path::PathBuf>,

    /// The sender of every message.
    #[arg(
        long,
        env = "LABS_MAIL_FROM",
        default_value = "labs <noreply@localhost>"
    )]
    pub mail_from: String,

    /// Deadline of each SMTP command.
    #[arg(long, env = "LABS_SMTP_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub smtp_timeout: Duration,
}

/// Why the mail settings are unusable.
#[derive(Debug, thiserror::Error)]
pub enum MailConfigError {
    #[error("LABS_MAIL_FROM is not a valid mailbox ({0})")]
    From(lettre::address::AddressError),
    #[error("LABS_SMTP_URL is not a valid SMTP URL ({0})")]
    Url(lettre::transport::smtp::Error),
    #[error("LABS_SMTP_CA_FILE cannot be used ({0})")]
    CaFile(String),
}

/// Sends messages: through SMTP, or into the log in development.
#[derive(Clone)]
pub struct Mailer {
    from: Mailbox,
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .field("smtp", &self.transport.is_some())
            .finish()
    }
}

impl Mailer {
    /// A mailer for `config`; without an SMTP URL, one that logs messages.
    pub fn new(config: &MailConfig) -> Result<Self, MailConfigError> {
        let from: Mailbox = config.mail_from.parse().map_err(MailConfigError::From)?;
        let transport = match &config.smtp_url {
            None => None,
            Some(url) => {
                let mut builder =
                    AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                        .map_err(MailConfigError::Url)?
                        .timeout(Some(config.smtp_timeout));
                if let Some(ca_file) = &config.smtp_ca_file {
                    builder = builder.tls(tls_trusting(url.expose_secret(), ca_file)?);
                }
                Some(builder.build())
            }
        };
        Ok(Self { from, transport })
    }

    /// Renders and sends one email. An address that cannot be sent to is a permanent failure:
    /// logged and dropped (`Ok`), not retried.
    pub async fn send(&self, to: &str, email: &labs_jobs::jobs::Message) -> Result<(), JobError> {
        let rendered = templates::render(email)?;
        // The rule every stored address passed at the API (one rule, labs_domain's). An address
        // that fails it (stored before the rule, or queued by hand) fails the same way on every
        // attempt: retrying it for hours with backoff helps nobody and hides it among transient
        // errors. The queue has no "permanent error" to return instead of Ok; the error log
        // line is where it shows.
        let Some(to) = labs_domain::Email::parse(to)
            .ok()
            .and_then(|to| to.as_str().parse::<Mailbox>().ok())
        else {
            tracing::error!(
                email.template = rendered.template,
                "email not sent: the recipient is not an address we can send to; dropped, not retried"
            );
            return Ok(());
        };
        let message = Message::builder()
            .from(self.from.clone())
            .to(to.clone())
            .subject(&rendered.subject)
            .multipart(MultiPart::alternative_plain_html(
                rendered.text.clone(),
                rendered.html,
            ))?;
        match &self.transport {
            Some(transport) => {
                transport.send(message).await?;
                tracing::info!(
                    email.template = rendered.template,
                    email.domain = to.email.domain(),
                    "email sent"
                );
            }
            // Development only: the whole message, so that a developer can follow its links.
            None => tracing::info!(
                email.template = rendered.template,
                email.to = %to,
                email.subject = rendered.subject,
                email.text = rendered.text,
                "email not sent (no LABS_SMTP_URL): logged instead"
            ),
        }
        Ok(())
    }
}

/// The TLS mode the URL asks for (lettre's reading of it: `smtps://` is TLS from the first
/// byte, `?tls=required` STARTTLS or fail, `?tls=opportunistic` STARTTLS if offered), with the
/// extra roots of `ca_file` trusted too.
fn tls_trusting(url: &str, ca_file: &std::path::Path) -> Result<Tls, MailConfigError> {
    let fail = |message: String| MailConfigError::CaFile(message);
    let parsed = url::Url::parse(url).map_err(|e| fail(format!("LABS_SMTP_URL: {e}")))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| fail("LABS_SMTP_URL has no host".to_owned()))?;
    let pem = std::fs::read(ca_file).map_err(|e| fail(format!("{}: {e}", ca_file.display())))?;
    let certificate =
        Certificate::from_pem(&pem).map_err(|e| fail(format!("{}: {e}", ca_file.display())))?;
    let parameters = TlsParameters::builder(host.to_owned())
        .add_root_certificate(certificate)
        .build_rustls()
        .map_err(|e| fail(e.to_string()))?;
    let mode = parsed
        .query_pairs()
        .find(|(key, _)| key == "tls")
        .map(|(_, value)| value.into_owned());
    match (parsed.scheme(), mode.as_deref()) {
        ("smtps", _) => Ok(Tls::Wrapper(parameters)),
        ("smtp", Some("required")) => Ok(Tls::Required(parameters)),
        ("smtp", Some("opportunistic")) => Ok(Tls::Opportunistic(parameters)),
        _ => Err(fail(
            "the URL asks for no TLS (use smtps:// or ?tls=required)".to_owned(),
        )),
    }
}

/// At most `quota` emails to one address, of every kind together
/// (`LABS_RATE_LIMIT_EMAILS_PER_ADDRESS`), counted in Redis by every worker, under a hash of
/// the address.
///
/// Here, in the worker, and not where the API queues the message: the API's answers must cost
/// the same whether or not the address has an account, and a cap checked there would be a
/// Redis round trip only on the paths that send. Each endpoint family's own per-account limit
/// remains; this one bounds their sum (signup of a taken address, reset, code, verification:
/// four families of 10 per 15 minutes would otherwise be 40 messages to a stranger).
#[derive(Clone)]
pub struct EmailCap {
    redis: RedisConnection,
    quota: Quota,
    namespace: String,
}

impl EmailCap {
    /// The cap `quota` with its counters under `namespace` (the rate-limit namespace).
    pub fn new(redis: RedisConnection, quota: Quota, namespace: &str) -> Self {
        Self {
            redis,
            quota,
            namespace: namespace.to_owned(),
        }
    }

    fn key(&self, to: &str) -> String {
        let digest = labs_auth::token::hash_token(&to.trim().to_lowercase());
        let short: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        format!("{}:email:to:{short}", self.namespace)
    }

    /// Counts one message to `to`; false when the address's budget is spent. A Redis error is
    /// the job's error (retried later): the cap is not skipped, and nothing is lost.
    async fn take(&self, to: &str) -> Result<bool, JobError> {
        let mut redis = self.redis.clone();
        Ok(ratelimit::check(&mut redis, &self.key(to), self.quota).await? == Decision::Allowed)
    }

    /// Gives back the count of a message that was not sent (its job will be retried).
    async fn give_back(&self, to: &str) {
        let mut redis = self.redis.clone();
        if let Err(error) = ratelimit::refund(&mut redis, &self.key(to), self.quota).await {
            tracing::warn!(%error, "cannot give back an unsent email's count");
        }
    }
}

impl std::fmt::Debug for EmailCap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailCap")
            .field("quota", &self.quota)
            .finish_non_exhaustive()
    }
}

impl Handler<WorkerContext> for SendEmail {
    /// Idempotence: SMTP cannot take a message back, so a worker that crashes after the server
    /// accepted the message and before the job was acknowledged sends it twice. That is the
    /// at-least-once trade-off for email; the messages we send are safe to receive twice.
    ///
    /// Over the address's cap, the message is dropped (logged and counted, never retried: a
    /// retry an hour later would deliver a stale code or link, and the flood it stops).
    async fn handle(self, ctx: &WorkerContext) -> Result<(), JobError> {
        // Not capped: the operator's `labs email test` (only someone holding the deployment's
        // credentials can queue it, and a cap would make an SMTP debugging session go quiet),
        // and security notices (see `Message::bypasses_address_cap`).
        let capped = !self.email.bypasses_address_cap;
        let Some(cap) = ctx.email_cap.as_ref().filter(|_| capped) else {
            return ctx.mailer.send(&self.to, &self.email).await;
        };
        if !cap.take(&self.to).await? {
            let template = self.email.template.clone();
            metrics::counter!(
                "labs_emails_dropped_total",
                "reason" => "address_cap",
                "template" => template
            )
            .increment(1);
            tracing::warn!(
                email.template = %self.email.template,
                email.domain = self.to.rsplit_once('@').map_or("", |(_, domain)| domain),
                "email dropped: this address has had its share of messages for now"
            );
            return Ok(());
        }
        let sent = ctx.mailer.send(&self.to, &self.email).await;
        if sent.is_err() {
            cap.give_back(&self.to).await;
        }
        sent
    }
}
