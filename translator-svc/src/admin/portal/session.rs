//! Portal sign-in sessions: a random 256-bit id in an HttpOnly cookie, stored server-side in the
//! keys table under the SHA-256 of the id (so a leaked table holds no usable session), with idle
//! and absolute expiry; and the per-session CSRF token derived from the id. Replicas stay
//! stateless: any of them can check any session.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::ids::base62;
use crate::keys::Dynamo;
use crate::keys::item::{Item, StoreError, get_n, s};
use crate::keys::tables::{PK, session_pk};

/// The cookie's name. No `__Host-` prefix: that needs `Path=/`, and the cookie must stay on
/// `/admin` so it never travels with API traffic.
pub const COOKIE_NAME: &str = "gw_admin_session";
/// The header the portal's scripts send the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// 43 base62 characters carry 256 bits (as API keys do).
const ID_CHARS: usize = 43;
/// `last_seen` is written at most this often per session, so reads stay reads.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// A live session as the store holds it (times in Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub created: u64,
    pub last_seen: u64,
    /// Absolute end: `created` + the maximum lifetime.
    pub expires: u64,
}

impl Session {
    /// When the session ends if unused from now on.
    pub fn ends_at(&self, idle: Duration) -> u64 {
        (self.last_seen + idle.as_secs()).min(self.expires)
    }
}

pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn id_hash(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

/// The CSRF token of a session: bound to the id, which scripts never see (HttpOnly), so a page
/// on another origin can neither read nor compute it.
pub fn csrf_token(id: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"gateway-admin-csrf\0");
    hasher.update(id.as_bytes());
    hex::encode(hasher.finalize())
}

pub fn csrf_matches(id: &str, presented: &str) -> bool {
    let expected = csrf_token(id);
    presented.len() == expected.len() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

/// The session id from the request's cookies, if it has the shape of one.
pub fn cookie_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim().to_string())
        .filter(|v| v.len() == ID_CHARS && v.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// `Set-Cookie` for a new session; `secure` per `ADMIN_COOKIE_SECURE`.
pub fn set_cookie(id: &str, max_age: Duration, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{COOKIE_NAME}={id}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        max_age.as_secs()
    )
}

/// `Set-Cookie` that makes the browser drop the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    set_cookie("", Duration::ZERO, secure)
}

/// The session table: items `session#<sha256 of id>` in the keys table.
#[derive(Clone)]
pub struct SessionStore {
    dynamo: Dynamo,
    idle: Duration,
    lifetime: Duration,
}

impl SessionStore {
    pub fn new(dynamo: Dynamo, idle: Duration, lifetime: Duration) -> SessionStore {
        SessionStore {
            dynamo,
            idle,
            lifetime,
        }
    }

    pub fn idle(&self) -> Duration {
        self.idle
    }

    fn key(id: &str) -> Item {
        Item::from([(PK.to_string(), s(session_pk(&id_hash(id))))])
    }

    /// A new session from `now`: its id (for the cookie only) and its record.
    pub async fn create(&self, now: SystemTime) -> Result<(String, Session), StoreError> {
        let id = base62(ID_CHARS);
        let now = unix_secs(now);
        let session = Session {
            created: now,
            last_seen: now,
            expires: now + self.lifetime.as_secs(),
        };
        let mut item = Self::key(&id);
        item.extend([
            ("type".to_string(), s("session")),
            ("created".to_string(), crate::keys::item::n(session.created)),
            (
                "last_seen".to_string(),
                crate::keys::item::n(session.last_seen),
            ),
            // Also the DynamoDB TTL attribute, so abandoned sessions are swept.
            (
                "expires_at".to_string(),
                crate::keys::item::n(session.expires),
            ),
        ]);
        self.dynamo
            .client
            .put_item()
            .table_name(&self.dynamo.tables.keys)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(StoreError::backend)?;
        Ok((id, session))
    }

    /// The live session with this id, its idle clock restarted; `None` when unknown or over
    /// (an expired one is deleted on the way).
    pub async fn find(&self, id: &str, now: SystemTime) -> Result<Option<Session>, StoreError> {
        let out = self
            .dynamo
            .client
            .get_item()
            .table_name(&self.dynamo.tables.keys)
            .set_key(Some(Self::key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::backend)?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let num = |name| {
            get_n::<u64>(&item, name)
                .ok_or_else(|| StoreError::Malformed(format!("session without {name}")))
        };
        let mut session = Session {
            created: num("created")?,
            last_seen: num("last_seen")?,
            expires: num("expires_at")?,
        };
        let now = unix_secs(now);
        if now >= session.ends_at(self.idle) {
            self.delete(id).await?;
            return Ok(None);
        }
        if now.saturating_sub(session.last_seen)
            >= TOUCH_EVERY.as_secs().min(self.idle.as_secs() / 4)
        {
            self.touch(id, now).await?;
            session.last_seen = now;
        }
        Ok(Some(session))
    }

    async fn touch(&self, id: &str, now: u64) -> Result<(), StoreError> {
        let result = self
            .dynamo
            .client
            .update_item()
            .table_name(&self.dynamo.tables.keys)
            .set_key(Some(Self::key(id)))
            .update_expression("SET last_seen = :now")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":now", crate::keys::item::n(now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Signed out meanwhile: the next request finds nothing.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(StoreError::backend(e)),
        }
    }

    pub async fn delete(&self, id: &str) -> Result<(), StoreError> {
        self.dynamo
            .client
            .delete_item()
            .table_name(&self.dynamo.tables.keys)
            .set_key(Some(Self::key(id)))
            .send()
            .await
            .map_err(StoreError::backend)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn cookie_round_trip_and_shape() {
        let id = base62(ID_CHARS);
        let cookie = set_cookie(&id, Duration::from_secs(60), true);
        assert_eq!(
            cookie,
            format!(
                "gw_admin_session={id}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=60; Secure"
            )
        );
        let mut headers = HeaderMap::new();
        headers.append("cookie", HeaderValue::from_static("other=1"));
        headers.append(
            "cookie",
            HeaderValue::from_str(&format!("a=b; gw_admin_session={id}")).unwrap(),
        );
        assert_eq!(cookie_id(&headers), Some(id));
        let mut bad = HeaderMap::new();
        bad.insert("cookie", HeaderValue::from_static("gw_admin_session=short"));
        assert_eq!(cookie_id(&bad), None);
        assert!(clear_cookie(false).contains("Max-Age=0"));
        assert!(!clear_cookie(false).contains("Secure"));
    }

    #[test]
    fn csrf_token_is_bound_to_the_session() {
        let (a, b) = (base62(ID_CHARS), base62(ID_CHARS));
        assert!(csrf_matches(&a, &csrf_token(&a)));
        assert!(!csrf_matches(&a, &csrf_token(&b)));
        assert!(!csrf_matches(&a, ""));
        assert!(!csrf_token(&a).contains(&a));
    }
}
