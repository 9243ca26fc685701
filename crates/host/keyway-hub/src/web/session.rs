//! Login and sessions: the token compared in constant time, the session
//! table with its absolute expiry and bound, and logout.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use super::html::{self, esc};

use super::{COOKIE, MAX_SESSIONS, Sess, Web};

#[derive(Clone)]
pub(super) struct Session {
    pub(super) csrf: String,
    pub(super) expires: Instant,
    pub(super) created: Instant,
}

/// The server-side session table.
#[derive(Default)]
pub(super) struct Sessions {
    pub(super) map: Mutex<HashMap<String, Session>>,
}

pub(super) fn random_hex() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the OS random number generator failed");
    keyway_vendor::keys::hex(&b)
}

impl Sessions {
    pub(super) fn create(&self, ttl: Duration) -> (String, Session) {
        let id = random_hex();
        let now = Instant::now();
        let s = Session {
            csrf: random_hex(),
            expires: now + ttl,
            created: now,
        };
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, s| s.expires > now);
        while m.len() >= MAX_SESSIONS {
            let oldest = m
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => m.remove(&k),
                None => break,
            };
        }
        m.insert(id.clone(), s.clone());
        (id, s)
    }

    pub(super) fn get(&self, id: &str) -> Option<Session> {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        match m.get(id) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                m.remove(id);
                None
            }
            None => None,
        }
    }

    pub(super) fn remove(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}

#[derive(Deserialize)]
pub(super) struct NextQ {
    #[serde(default)]
    pub(super) next: Option<String>,
}

/// Only a local path: no scheme, no `//host`, no backslash tricks.
pub(super) fn safe_next(n: Option<&str>) -> String {
    match n {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p.into(),
        _ => "/".into(),
    }
}

pub(super) async fn login_page(Query(q): Query<NextQ>) -> Response {
    login_form(&safe_next(q.next.as_deref()), None, StatusCode::OK)
}

pub(super) fn login_form(next: &str, error: Option<&str>, status: StatusCode) -> Response {
    let mut body = String::from("<h1>Log in</h1>");
    if let Some(e) = error {
        let _ = write!(body, "<p class=\"error\">{}</p>", esc(e));
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/login\" class=\"card\"><input type=\"hidden\" name=\"next\" value=\"{}\">\
         <label>API token <input type=\"password\" name=\"token\" autocomplete=\"current-password\" required autofocus></label>\
         <button type=\"submit\">Log in</button></form>\
         <p class=\"muted\">The token is on the first line <code>keyway hub</code> prints (and in <code>DATA/api-token</code>).</p>",
        esc(next)
    );
    (status, Html(html::page("Log in", None, "", None, &body))).into_response()
}

#[derive(Deserialize)]
pub(super) struct LoginIn {
    pub(super) token: String,
    #[serde(default)]
    pub(super) next: Option<String>,
}

pub(super) async fn login(State(w): State<Web>, Form(f): Form<LoginIn>) -> Response {
    let a = Sha256::digest(f.token.as_bytes());
    let b = Sha256::digest(w.api.token.as_bytes());
    let ok = !w.api.token.is_empty() && bool::from(a.ct_eq(&b));
    let next = safe_next(f.next.as_deref());
    if !ok {
        // Slows guessing; the token is 256 bits anyway.
        tokio::time::sleep(Duration::from_millis(200)).await;
        return login_form(
            &next,
            Some("That is not this hub's API token."),
            StatusCode::UNAUTHORIZED,
        );
    }
    let (id, _) = w.sessions.create(w.opts.session_ttl);
    let cookie = format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        w.opts.session_ttl.as_secs()
    );
    let mut r = Redirect::to(&next).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

pub(super) async fn logout(
    State(w): State<Web>,
    axum::Extension(s): axum::Extension<Sess>,
) -> Response {
    w.sessions.remove(&s.id);
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("keyway_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    r
}
