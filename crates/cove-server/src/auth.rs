//! Authentication: the `AuthUser` extractor. The credential is taken from
//! the first header present, in the order the TS SDK documents for the
//! control plane (`API.md` §1.6): `X-Auth-Token`, `X-Access-Token`,
//! `Authorization: Bearer …`, `X-Api-Key`. It is looked up by hash in the
//! store; a missing or unknown key is 401.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use cove_store::{Secret, User};

use crate::error::{ApiError, ServiceError};
use crate::state::AppState;

/// The authenticated caller.
#[derive(Clone, Debug)]
pub struct AuthUser(pub User);

/// The credential a request carries, by precedence; `None` when absent.
pub fn credential(headers: &HeaderMap) -> Option<Secret<String>> {
    for name in [
        "x-auth-token",
        "x-access-token",
        "authorization",
        "x-api-key",
    ] {
        let Some(value) = headers.get(name) else {
            continue;
        };
        let text = value.to_str().ok()?.trim();
        let token = if name == "authorization" {
            let (scheme, rest) = text.split_once(' ')?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return None;
            }
            rest.trim()
        } else {
            text
        };
        return (!token.is_empty()).then(|| Secret::new(token.to_owned()));
    }
    None
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let key = credential(&parts.headers).ok_or(ServiceError::Unauthorized)?;
        let user = state
            .store
            .user_by_api_key(key.expose())
            .await?
            .ok_or(ServiceError::Unauthorized)?;
        Ok(AuthUser(user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn precedence_follows_the_sdk_comment() {
        let c = |pairs| credential(&headers(pairs)).map(|s| s.expose().clone());
        assert_eq!(c(&[("x-api-key", "k")]), Some("k".into()));
        assert_eq!(
            c(&[("x-api-key", "k"), ("authorization", "Bearer b")]),
            Some("b".into())
        );
        assert_eq!(
            c(&[("authorization", "bearer b"), ("x-access-token", "a")]),
            Some("a".into())
        );
        assert_eq!(
            c(&[("x-access-token", "a"), ("x-auth-token", "t")]),
            Some("t".into())
        );
        assert_eq!(
            c(&[("authorization", "Basic abc"), ("x-api-key", "k")]),
            None
        );
        assert_eq!(c(&[("x-api-key", "")]), None);
        assert_eq!(c(&[]), None);
    }
}
