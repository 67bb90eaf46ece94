//! `/verify-email`: the verification link's page. The form asks for the signup's password;
//! its post calls what `POST /auth/verify` calls.

use askama::Template;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use labs_domain::password::MAX_CHARS;
use serde::Deserialize;

use super::render::{LinkQuery, Outcome, Refusal, html, incomplete_link, link_token, unreadable};
use crate::Accounts;
use crate::auth::limits::ClientIp;
use crate::links::VERIFY_EMAIL;

/// The verification form. Every field optional: a missing one gets its own message, not the
/// form extractor's.
#[derive(Debug, Deserialize)]
pub(super) struct VerifyForm {
    token: Option<String>,
    password: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/verify_email.html")]
struct VerifyEmailPage<'a> {
    title: &'a str,
    action: &'a str,
    token: &'a str,
    error: Option<&'a str>,
    max_chars: usize,
}

impl<'a> VerifyEmailPage<'a> {
    fn new(token: &'a str, error: Option<&'a str>) -> Self {
        Self {
            title: "Confirm your email address",
            action: VERIFY_EMAIL,
            token,
            error,
            max_chars: MAX_CHARS,
        }
    }
}

/// Confirm your email address: the form.
pub(super) async fn show_verify_email(query: Result<Query<LinkQuery>, QueryRejection>) -> Response {
    let Some(token) = link_token(query.ok().and_then(|Query(query)| query.token)) else {
        return incomplete_link();
    };
    html(StatusCode::OK, &VerifyEmailPage::new(&token, None))
}

/// Confirm your email address: the password checked, the address verified.
pub(super) async fn submit_verify_email(
    State(state): State<Accounts>,
    ip: ClientIp,
    form: Result<axum::Form<VerifyForm>, FormRejection>,
) -> Response {
    let form = match form {
        Ok(axum::Form(form)) => form,
        Err(rejection) => return unreadable(&rejection),
    };
    let Some(token) = link_token(form.token) else {
        return incomplete_link();
    };
    let password = form.password.filter(|password| !password.is_empty());
    match crate::auth::signup::verify_email(&state, ip, &token, password).await {
        Ok(_) => html(
            StatusCode::OK,
            &Outcome::done(
                "Address confirmed",
                "Your email address is confirmed: log in with it and your password.",
            ),
        ),
        Err(error) => {
            let refusal = Refusal::new(error);
            if refusal.form_cannot_help() {
                return refusal.show_outcome("This link cannot confirm the address");
            }
            // Wrong or missing password, too many tries: the link may still hold, so the form
            // again, with what went wrong.
            let message = if refusal.code == "invalid-body" {
                "Type the password you chose when you signed up.".to_owned()
            } else {
                refusal.detail.clone()
            };
            refusal.show(&VerifyEmailPage::new(&token, Some(&message)))
        }
    }
}
