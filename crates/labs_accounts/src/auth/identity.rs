//! Who is calling: the access token (Bearer header, or the access cookie of a browser
//! session), checked, then its session and account read from the database.

use crate::db::users::User;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use labs_db::Db;
use labs_domain::SessionId;
use labs_http::ApiError;

use crate::Accounts;
use crate::state::Auth;

/// The authenticated caller. Extracting it answers 401 when there is no valid token, or when
/// its session was revoked or its account deactivated (checked on every request, so logout
/// and password reset take effect at once).
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub user: User,
    pub session_id: SessionId,
    /// The token came from a credential check, not a refresh.
    pub fresh: bool,
}

/// The caller, who must be an admin (403 otherwise).
#[derive(Debug, Clone)]
pub struct AdminUser(pub CurrentUser);

const NOT_AUTHENTICATED: ApiError = ApiError::Unauthorized {
    code: "not-authenticated",
    detail: "This endpoint needs an access token (Authorization: Bearer, or the session cookie).",
};

/// Generic over the state: any state that offers [`Accounts`] by `FromRef` can take these
/// extractors, so another feature's router (billing) needs only that part.
impl<S> FromRequestParts<S> for CurrentUser
where
    S: Send + Sync,
    Accounts: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let accounts = Accounts::from_ref(state);
        authenticate(&parts.headers, &accounts.auth, &accounts.db)
            .await?
            .ok_or(NOT_AUTHENTICATED)
    }
}

impl<S> FromRequestParts<S> for AdminUser
where
    S: Send + Sync,
    Accounts: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = CurrentUser::from_request_parts(parts, state).await?;
        if caller.user.is_admin {
            Ok(Self(caller))
        } else {
            Err(ApiError::Forbidden {
                code: "admin-only",
                detail: "Only administrators may use this endpoint.",
            })
        }
    }
}

impl CurrentUser {
    /// 403 unless the token is fresh (from a login in this session, not a refresh).
    pub(crate) fn require_fresh(&self) -> Result<(), ApiError> {
        if self.fresh {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                code: "fresh-login-required",
                detail: "This action needs a fresh login: sign in again, then retry.",
            })
        }
    }
}

/// The caller if the request carries a token; `Ok(None)` if it carries none; 401 if the
/// token it carries does not hold.
pub(crate) async fn authenticate(
    headers: &HeaderMap,
    auth: &Auth,
    db: &Db,
) -> Result<Option<CurrentUser>, ApiError> {
    let token = match headers.get(header::AUTHORIZATION) {
        Some(value) => {
            let value = value.to_str().unwrap_or_default();
            match value.split_once(' ') {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
                _ => {
                    return Err(ApiError::Unauthorized {
                        code: "invalid-token",
                        detail: "The Authorization header must be `Bearer <access token>`.",
                    });
                }
            }
        }
        None => match cookie(headers, &auth.cookies.access)? {
            Some(token) => token,
            None => return Ok(None),
        },
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = match auth.verified.get(token, now) {
        Some(claims) => claims,
        None => {
            let claims = auth.keys.jwt.verify(token).map_err(|error| {
                tracing::info!(%error, "access token refused");
                ApiError::Unauthorized {
                    code: "invalid-token",
                    detail: "The access token is invalid or has expired.",
                }
            })?;
            auth.verified.insert(token, &claims);
            claims
        }
    };
    let user = crate::db::users::by_live_session(db, claims.sub, claims.sid)
        .await?
        .ok_or(ApiError::Unauthorized {
            code: "session-ended",
            detail: "This session has ended (logged out, password changed, or account deactivated).",
        })?;
    Ok(Some(CurrentUser {
        user,
        session_id: claims.sid,
        fresh: claims.fresh,
    }))
}

/// The value of cookie `name`, if the request sent it; 400 if it sent it twice.
///
/// Two cookies of one name reach us when another site of the same domain planted one with a
/// wider `Domain` or another `Path` (cookie tossing): taking the first, as most parsers do,
/// would let it choose the session. Refused instead, whatever the order.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    let mut values = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"'));
    let first = values.next();
    if values.next().is_some() {
        return Err(ApiError::BadRequest {
            code: "duplicate-cookie",
            detail: "The request carries a session cookie twice: clear this site's cookies and log in again.",
        });
    }
    Ok(first.filter(|value| !value.is_empty()))
}
