//! The hub's web UI: server-rendered HTML, no JavaScript at all.
//!
//! Design:
//! * **One engine, two faces.** Every page reads and every form acts
//!   through the same [`Hub`](crate::engine::Hub) calls as the JSON API,
//!   in `spawn_blocking`; the actions with logic of their own (updates
//!   with decisions, consent that starts a push, install, import) are
//!   [`crate::api::actions`], which the API's handlers call too. A refused
//!   action shows the API's stable error code and sentence.
//! * **Login.** The login form takes the hub's API token itself (the
//!   secret `keyway hub` prints on its first line); it is compared in
//!   constant time (both sides hashed first). Success creates a session:
//!   a random 256-bit id (the OS CSPRNG) in a cookie `keyway_session`
//!   (`HttpOnly; SameSite=Strict; Path=/`), kept server-side with an
//!   absolute expiry ([`WebOptions::session_ttl`]) and a bounded table.
//!   Logout forgets it. Every page but `/login` and `/static/` needs one;
//!   without it a page redirects to `/login?next=PATH` (a local path only).
//! * **CSRF.** Each session has its own random 256-bit CSRF token, in a
//!   hidden field of every form; every POST (logout included) is checked
//!   centrally, before any handler runs, in constant time. When the
//!   browser sends `Origin` it must be this host, and `Sec-Fetch-Site`
//!   must be `same-origin` or `none`: a cross-site POST is refused even
//!   before the token is looked at. The login POST gets the same origin
//!   checks.
//! * **DNS rebinding.** The `Host` header must name loopback
//!   (`localhost`, `127.0.0.1`, `[::1]`, any port) or one of
//!   [`WebOptions::allowed_hosts`] (the shell adds its listen address):
//!   a hostile name that resolves to 127.0.0.1 gets `421`.
//! * **XSS.** Every value reaches HTML through [`html::esc`]; vendor
//!   release notes (Markdown) show as escaped preformatted text. The
//!   `Content-Security-Policy` allows no script at all (`default-src
//!   'none'`), styles only from `/static/style.css`, and `frame-ancestors
//!   'none'` with `X-Frame-Options: DENY` stop clickjacking.
//! * **Live progress** without JavaScript: while a push runs, the lock's
//!   page carries `<meta http-equiv="refresh" content="1">` and shows
//!   the engine's progress (bytes sent of total, phase, postponement).

mod forms;
mod guard;
pub mod html;
mod locks;
mod pages;
mod session;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::api::{Api, ApiError};
use crate::model::{Digest, LockId};
use forms::{
    AutoIn, ConsentIn, InstallIn, PairIn, lock_add, lock_form, lock_log_download, lock_log_fetch,
    lock_refresh, lock_remove,
};
use guard::guard;
use html::esc;
use locks::{lock_page, locks_page};
use pages::{audit_page, import, import_page, release_page, releases_page};
use session::{Sessions, login, login_page, logout};

/// The session cookie's name.
pub const COOKIE: &str = "keyway_session";
/// The largest form body the UI reads.
pub const MAX_FORM_BYTES: usize = 16 * 1024;
/// The most sessions kept at once (the oldest goes first).
pub const MAX_SESSIONS: usize = 256;

/// The CSP every response carries: no script, styles from this origin.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// How the UI is served.
#[derive(Debug, Clone)]
pub struct WebOptions {
    /// How long a session lasts from login (absolute).
    pub session_ttl: Duration,
    /// `Host` values accepted besides loopback names (`host` or
    /// `host:port`); the shell adds its listen address when it is not
    /// loopback.
    pub allowed_hosts: Vec<String>,
}

impl Default for WebOptions {
    fn default() -> WebOptions {
        WebOptions {
            session_ttl: Duration::from_secs(12 * 3600),
            allowed_hosts: Vec::new(),
        }
    }
}

#[derive(Clone)]
struct Web {
    api: Api,
    sessions: Arc<Sessions>,
    opts: Arc<WebOptions>,
}

/// The logged-in session a handler runs under.
#[derive(Clone)]
struct Sess {
    id: String,
    csrf: String,
}

// ----- errors ----------------------------------------------------------------------

/// A refused action or a bad request, shown as a page with the API's
/// stable code and its sentence.
struct WebError(ApiError);

impl From<ApiError> for WebError {
    fn from(e: ApiError) -> WebError {
        WebError(e)
    }
}

fn bad(status: StatusCode, code: &'static str, message: impl Into<String>) -> WebError {
    WebError(ApiError {
        status,
        code,
        message: message.into(),
    })
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let e = self.0;
        let body = format!(
            "<h1>That did not work</h1><p class=\"error\"><code>{}</code> {}</p><p><a href=\"/\">Back to the locks</a></p>",
            esc(e.code),
            esc(&e.message)
        );
        (e.status, Html(html::page("Error", None, "", None, &body))).into_response()
    }
}

type WebResult = Result<Response, WebError>;

// ----- middleware --------------------------------------------------------------------

// ----- the router ---------------------------------------------------------------------

/// The UI's routes with default options (merge beside [`crate::api::router`]).
pub fn router(api: Api) -> Router {
    router_with(api, WebOptions::default())
}

/// The UI's routes. It has no fallback of its own, so it merges with the
/// API's router (whose fallback answers unknown paths).
pub fn router_with(api: Api, opts: WebOptions) -> Router {
    let w = Web {
        api,
        sessions: Arc::new(Sessions::default()),
        opts: Arc::new(opts),
    };
    Router::new()
        .route("/", get(locks_page))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/static/style.css", get(style))
        .route("/locks", post(lock_add))
        .route("/locks/{id}", get(lock_page))
        .route("/locks/{id}/pair", post(lock_form::<PairIn>))
        .route("/locks/{id}/refresh", post(lock_refresh))
        .route("/locks/{id}/consent", post(lock_form::<ConsentIn>))
        .route("/locks/{id}/install", post(lock_form::<InstallIn>))
        .route("/locks/{id}/auto-install", post(lock_form::<AutoIn>))
        .route("/locks/{id}/logs/fetch", post(lock_log_fetch))
        .route("/locks/{id}/logs/{n}", get(lock_log_download))
        .route("/locks/{id}/remove", post(lock_remove))
        .route("/audit", get(audit_page))
        .route("/import", get(import_page).post(import))
        .route("/releases", get(releases_page))
        .route("/releases/{digest}", get(release_page))
        .route_layer(axum::middleware::from_fn_with_state(w.clone(), guard))
        .with_state(w)
}

/// The API and the UI on one router: what `keyway hub serve` serves.
pub fn app(api: Api, opts: WebOptions) -> Router {
    crate::api::router(api.clone()).merge(router_with(api, opts))
}

/// Serves [`app`] on `listener` until the process stops.
pub async fn serve(
    listener: tokio::net::TcpListener,
    api: Api,
    opts: WebOptions,
) -> std::io::Result<()> {
    axum::serve(listener, app(api, opts)).await
}

// ----- helpers ---------------------------------------------------------------------------

fn lock_id(s: &str) -> Result<LockId, WebError> {
    s.parse().map_err(|_| {
        bad(
            StatusCode::BAD_REQUEST,
            "bad_path",
            "a lock id is an integer",
        )
    })
}

fn digest(s: &str) -> Result<Digest, WebError> {
    Ok(crate::api::digest(s)?)
}

async fn frame(w: &Web, title: &str, sess: &Sess, refresh: Option<u32>, body: &str) -> WebResult {
    let (f, now) = w
        .api
        .run(move |hub| Ok((hub.freshness()?, hub.now())))
        .await?;
    let banner = html::freshness_banner(&f, now);
    Ok(Html(html::page(title, Some(&sess.csrf), &banner, refresh, body)).into_response())
}

fn see(path: &str) -> WebResult {
    Ok(Redirect::to(path).into_response())
}

// ----- login ---------------------------------------------------------------------------------

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("style.css"),
    )
        .into_response()
}

// ----- pages --------------------------------------------------------------------------------

type SessionExt = axum::Extension<Sess>;

// ----- actions --------------------------------------------------------------------------------
