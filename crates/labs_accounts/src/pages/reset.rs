//! `/reset-password`: the reset link's page. The form asks for a new password twice; its post
//! calls what `POST /auth/password-reset/confirm` calls.

use askama::Template;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use labs_domain::Password;
use labs_domain::password::{MAX_CHARS, MIN_CHARS};
use serde::Deserialize;

use super::render::{LinkQuery, Outcome, Refusal, html, incomplete_link, link_token, unreadable};
use crate::Accounts;
use crate::auth::limits::ClientIp;
use crate::links::RESET_PASSWORD;

/// The reset form.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ResetForm {
    token: Option<String>,
    new_password: Option<String>,
    confirm_password: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/reset_password.html")]
struct ResetPasswordPage<'a> {
    title: &'a str,
    action: &'a str,
    token: &'a str,
    error: Option<&'a str>,
    min_chars: usize,
    max_chars: usize,
}

impl<'a> ResetPasswordPage<'a> {
    fn new(token: &'a str, error: Option<&'a str>) -> Self {
        Self {
            title: "Choose a new password",
            action: RESET_PASSWORD,
            token,
            error,
            min_chars: MIN_CHARS,
            max_chars: MAX_CHARS,
        }
    }
}

/// Choose a new password: the form.
pub(super) async fn show_reset_password(
    query: Result<Query<LinkQuery>, QueryRejection>,
) -> Response {
    let Some(token) = link_token(query.ok().and_then(|Query(query)| query.token)) else {
        return incomplete_link();
    };
    html(StatusCode::OK, &ResetPasswordPage::new(&token, None))
}

/// Choose a new password: the password set, every session ended.
pub(super) async fn submit_reset_password(
    State(state): State<Accounts>,
    ip: ClientIp,
    form: Result<axum::Form<ResetForm>, FormRejection>,
) -> Response {
    let form = match form {
        Ok(axum::Form(form)) => form,
        Err(rejection) => return unreadable(&rejection),
    };
    let Some(token) = link_token(form.token) else {
        return incomplete_link();
    };
    let again = |error: &str| {
        html(
            StatusCode::UNPROCESSABLE_ENTITY,
            &ResetPasswordPage::new(&token, Some(error)),
        )
    };
    let typed = form.new_password.unwrap_or_default();
    if form
        .confirm_password
        .is_some_and(|confirm| confirm != typed)
    {
        return again("The two passwords differ: type the same one twice.");
    }
    let password = match Password::new(typed) {
        Ok(password) => password,
        Err(_) => {
            return again(&format!(
                "Choose a password of {MIN_CHARS} to {MAX_CHARS} characters."
            ));
        }
    };
    match crate::auth::password::confirm_reset(&state, ip, &token, &password).await {
        Ok(()) => html(
            StatusCode::OK,
            &Outcome::done(
                "Password changed",
                "Your new password is set, and every session of the account has ended: log in \
                 with the new password.",
            ),
        ),
        Err(error) => {
            let refusal = Refusal::new(error);
            if refusal.form_cannot_help() {
                return refusal.show_outcome("This link cannot change the password");
            }
            let message = refusal.detail.clone();
            refusal.show(&ResetPasswordPage::new(&token, Some(&message)))
        }
    }
}
