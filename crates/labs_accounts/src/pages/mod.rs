//! The pages the emailed links open, served by the api role under the root path: confirm the
//! address (`/verify-email?token=…`) and choose a new password (`/reset-password?token=…`),
//! the two pages every link the service emails points at. Plain HTML forms rendered by askama
//! (`templates/pages/`), one stylesheet from this router, no script; one file per page
//! (`verify`, `reset`) and what they share (`render`). They work out of the box (the default
//! `LABS_APP_URL` is [`crate::links::local_app_url`]); a web app of your own replaces them by
//! serving the same two paths and setting `LABS_APP_URL` to its address.
//!
//! They are a second rendering of the same protocol, not a second protocol: a submitted form
//! calls what `POST /auth/verify` and `POST /auth/password-reset/confirm` call
//! ([`crate::auth::signup::verify_email`], [`crate::auth::password::confirm_reset`]), with the
//! same rate limits and attempt caps, and an error they return is shown with its status
//! (4xx for anything the visitor can fix or has to ask again for; never a 500 for bad input).
//!
//! - **No work on GET.** Opening a link shows a form and touches nothing: mail scanners and
//!   link previews fetch links before the person does, and must not spend a single-use token
//!   (nor an attempt of the verification link).
//! - **CSRF**: the forms' POSTs pass the API's own origin check ([`labs_http::csrf::admit`]:
//!   `Sec-Fetch-Site`, then `Origin` against `Host`), applied by this router so that a refusal
//!   is an HTML page rather than the API's problem document. Rejected: a form token (a hidden
//!   value tied to a cookie or kept on the server). The pages hold no session to ride on, so
//!   what a forged cross-site post could do is submit a token its author already has, and the
//!   origin check refuses that in every browser that sends Fetch Metadata, without a cookie or
//!   server state. The price: a browser that sends neither `Sec-Fetch-Site` nor a usable
//!   `Origin` (the `no-referrer` policy below makes a form's `Origin` `null`) is refused; every
//!   current browser sends `Sec-Fetch-Site`.
//! - **The token stays in this page.** `Referrer-Policy: no-referrer` (the shared layer, plus a
//!   `<meta>` for proxies that drop headers) keeps the link's URL out of the stylesheet request
//!   and of anything followed from the page; the forms post to the bare path (the token travels
//!   in the body, not the URL), the access log records paths without their query string
//!   (`labs_http::layers`), and the pages are `Cache-Control: no-store`.
//! - **CSP** [`PAGES_CSP`]: styles from this origin only, forms only to this origin, nothing
//!   else loads, nobody frames the page, no `<base>`.
//!
//! Not in the OpenAPI document: HTML for people, not an API for clients.

use axum::Router;
use axum::extract::{FromRef, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use labs_http::csrf::TrustedOrigins;

use crate::Accounts;
use crate::links::{RESET_PASSWORD, VERIFY_EMAIL};
use render::{Outcome, html};

mod render;
mod reset;
mod verify;

/// The pages' Content-Security-Policy, in place of the API's `default-src 'none'`: the
/// stylesheet of this origin, forms that post to this origin (`form-action` does not fall back
/// to `default-src`, so it is named), no script at all.
pub const PAGES_CSP: &str = "default-src 'none'; style-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// The pages, for any state that offers [`Accounts`] by `FromRef`; `accounts` gives the origins
/// the CSRF check trusts.
pub fn router<S>(accounts: &Accounts) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Accounts: FromRef<S>,
{
    Router::new()
        // The verification link: a password form, then the address confirmed.
        .route(
            &format!("/{VERIFY_EMAIL}"),
            get(verify::show_verify_email).post(verify::submit_verify_email),
        )
        // The reset link: a new-password form, then the password set.
        .route(
            &format!("/{RESET_PASSWORD}"),
            get(reset::show_reset_password).post(reset::submit_reset_password),
        )
        // Their one stylesheet (relative links: `pages.css` beside the page, under any root path).
        .route("/pages.css", get(stylesheet))
        // Inner: refuse cross-origin posts before a body is read.
        .layer(middleware::from_fn_with_state(
            accounts.auth.trusted_origins.clone(),
            same_origin_posts,
        ))
        // Outer: every answer of these paths, the CSRF refusal included, carries the pages' CSP.
        .layer(middleware::map_response(page_headers))
}

/// The stylesheet of the pages.
async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../templates/pages/pages.css"),
    )
        .into_response()
}

/// Refuses a cross-origin POST with the API's own rule; an HTML page says so.
async fn same_origin_posts(
    State(trusted): State<TrustedOrigins>,
    request: Request,
    next: Next,
) -> Response {
    if labs_http::csrf::admit(&request, &trusted) {
        return next.run(request).await;
    }
    html(
        StatusCode::FORBIDDEN,
        &Outcome::failed(
            "Refused",
            "This form was sent from another site, which may not send it here.",
            Some("Open the link from the email yourself, and fill in the form it shows."),
        ),
    )
}

/// The pages' CSP (replacing the API's, which the shared layer then leaves alone), and
/// `no-store`: a page holds its link's token.
async fn page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGES_CSP),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
