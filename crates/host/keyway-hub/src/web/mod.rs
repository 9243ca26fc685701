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

pub mod html;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use crate::api::{Api, ApiError, actions, blocking};
use crate::engine::{Phase, Progress};
use crate::model::{
    ConsentSource, Decision, Digest, EventLevel, LockId, LockRecord, LogHealth, NewLock,
    Postponement, UpdateState,
};
use html::{csrf_field, esc};

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
struct Session {
    csrf: String,
    expires: Instant,
    created: Instant,
}

/// The server-side session table.
#[derive(Default)]
struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

fn random_hex() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the OS random number generator failed");
    keyway_vendor::keys::hex(&b)
}

impl Sessions {
    fn create(&self, ttl: Duration) -> (String, Session) {
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

    fn get(&self, id: &str) -> Option<Session> {
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

    fn remove(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
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

type WR = Result<Response, WebError>;

// ----- middleware --------------------------------------------------------------------

fn host_allowed(headers: &HeaderMap, opts: &WebOptions) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let host = host.to_ascii_lowercase();
    if opts
        .allowed_hosts
        .iter()
        .any(|a| a.eq_ignore_ascii_case(&host))
    {
        return true;
    }
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((n, tail)) if tail.is_empty() || tail.starts_with(':') => format!("[{n}]"),
            _ => return false,
        }
    } else {
        host.split(':').next().unwrap_or("").to_string()
    };
    name == "localhost"
        || name == "[::1]"
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback())
        || opts
            .allowed_hosts
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&name))
}

/// Whether a POST comes from this origin, as far as the browser says.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        let ok = matches!(site.to_str(), Ok("same-origin") | Ok("none"));
        if !ok {
            return false;
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
            return false;
        };
        let ok = origin.eq_ignore_ascii_case(&format!("http://{host}"))
            || origin.eq_ignore_ascii_case(&format!("https://{host}"));
        if !ok {
            return false;
        }
    }
    true
}

fn cookie_session(headers: &HeaderMap) -> Option<String> {
    for v in headers.get_all(header::COOKIE) {
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(';') {
            if let Some(val) = part
                .trim()
                .strip_prefix(COOKIE)
                .and_then(|r| r.strip_prefix('='))
                && val.len() == 64
                && val.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Some(val.to_string());
            }
        }
    }
    None
}

/// `Referrer-Policy: same-origin`, not `no-referrer`: under `no-referrer`
/// Chromium sends `Origin: null` on the UI's own form POSTs, which the
/// origin check must refuse (found by the browser test).
fn security_headers(r: &mut Response) {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
}

fn form_field(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded_pairs(body)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn form_urlencoded_pairs(body: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body).unwrap_or_default()
}

/// Host check, session, CSRF and origin checks, security headers.
async fn guard(State(w): State<Web>, req: Request, next: Next) -> Response {
    let mut r = guarded(w, req, next).await;
    security_headers(&mut r);
    r
}

async fn guarded(w: Web, req: Request, next: Next) -> Response {
    if !host_allowed(req.headers(), &w.opts) {
        return bad(
            StatusCode::MISDIRECTED_REQUEST,
            "host_not_allowed",
            "this hub answers only to its own address (loopback or its listen address): open it by that address",
        )
        .into_response();
    }
    let path = req.uri().path().to_string();
    if path.starts_with("/static/") {
        return next.run(req).await;
    }
    let post = req.method() == Method::POST;
    if post && !same_origin(req.headers()) {
        return bad(
            StatusCode::FORBIDDEN,
            "cross_site",
            "a form from another site was refused: use the hub's own pages",
        )
        .into_response();
    }
    if path == "/login" {
        return next.run(req).await;
    }
    let session = cookie_session(req.headers()).and_then(|id| w.sessions.get(&id).map(|s| (id, s)));
    let Some((id, s)) = session else {
        if post {
            return bad(
                StatusCode::UNAUTHORIZED,
                "login_required",
                "your session ended: log in again",
            )
            .into_response();
        }
        let next_path = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let q = serde_urlencoded::to_string([("next", next_path)]).unwrap_or_default();
        return Redirect::to(&format!("/login?{q}")).into_response();
    };
    let (parts, body) = req.into_parts();
    let req = if post {
        let bytes = match axum::body::to_bytes(body, MAX_FORM_BYTES).await {
            Ok(b) => b,
            Err(_) => {
                return bad(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("the form is larger than {MAX_FORM_BYTES} bytes"),
                )
                .into_response();
            }
        };
        let given = form_field(&bytes, "csrf").unwrap_or_default();
        let ok: bool = given.as_bytes().ct_eq(s.csrf.as_bytes()).into();
        if !ok {
            return bad(
                StatusCode::FORBIDDEN,
                "csrf_failed",
                "the form's security token is missing or wrong (an old page, or a forged form): reload the page and try again",
            )
            .into_response();
        }
        Request::from_parts(parts, Body::from(bytes))
    } else {
        Request::from_parts(parts, body)
    };
    let mut req = req;
    req.extensions_mut().insert(Sess { id, csrf: s.csrf });
    next.run(req).await
}

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
        .route("/locks/{id}/pair", post(lock_pair))
        .route("/locks/{id}/refresh", post(lock_refresh))
        .route("/locks/{id}/consent", post(lock_consent))
        .route("/locks/{id}/install", post(lock_install))
        .route("/locks/{id}/auto-install", post(lock_auto))
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

async fn frame(w: &Web, title: &str, sess: &Sess, refresh: Option<u32>, body: &str) -> WR {
    let hub = w.api.hub.clone();
    let (f, now) = blocking(move || Ok((hub.freshness()?, hub.now()))).await?;
    let banner = html::freshness_banner(&f, now);
    Ok(Html(html::page(title, Some(&sess.csrf), &banner, refresh, body)).into_response())
}

fn see(path: &str) -> WR {
    Ok(Redirect::to(path).into_response())
}

fn update_state(u: &UpdateState) -> String {
    match u {
        UpdateState::Confirmed => "<span class=\"ok\">confirmed</span>".into(),
        UpdateState::AwaitingConsent { .. } => {
            "<span class=\"warn\">pending: awaiting consent</span>".into()
        }
        UpdateState::Postponed { reason, .. } => {
            format!(
                "<span class=\"warn\">pending: postponed ({})</span>",
                esc(&postponement(reason))
            )
        }
        UpdateState::Installing { .. } => "<span class=\"warn\">installing</span>".into(),
        UpdateState::Trial { version } => {
            format!("<span class=\"warn\">trial of {}</span>", esc(version))
        }
        UpdateState::Declined { .. } => "declined".into(),
    }
}

fn postponement(p: &Postponement) -> String {
    match p {
        Postponement::BoltLocked => {
            "the bolt is locked: it installs once the bolt is withdrawn".into()
        }
        Postponement::BatteryLow { have_mwh, need_mwh } => format!(
            "the battery is low ({have_mwh} mWh, the update needs {need_mwh} mWh): it installs once charged"
        ),
    }
}

fn log_health(l: &LogHealth) -> String {
    match l {
        LogHealth::Unknown => "not fetched yet".into(),
        LogHealth::Intact { last_seq, at } => format!(
            "<span class=\"ok\">intact</span> to record {last_seq} ({})",
            esc(&html::time(*at))
        ),
        LogHealth::Gap {
            held_to,
            resumed_at,
            at,
        } => format!(
            "<span class=\"alert\">gap</span>: held to {held_to}, resumed at {resumed_at} ({})",
            esc(&html::time(*at))
        ),
        LogHealth::Broken { reason, at, .. } => format!(
            "<span class=\"alert\">broken</span>: {} ({})",
            esc(reason),
            esc(&html::time(*at))
        ),
    }
}

fn phase(p: Phase) -> &'static str {
    match p {
        Phase::Connecting => "connecting",
        Phase::Uploading => "uploading",
        Phase::Installing => "installing",
        Phase::Postponed => "postponed",
        Phase::Done => "done",
        Phase::Failed => "failed",
    }
}

fn progress_running(p: &Progress) -> bool {
    matches!(
        p.phase,
        Phase::Connecting | Phase::Uploading | Phase::Installing
    )
}

fn progress_html(p: &Progress) -> String {
    let mut o = format!(
        "<section class=\"progress\" id=\"progress\"><h2>Update {}</h2><p>Release <a href=\"/releases/{}\"><code>{}</code></a>, {} image: <strong id=\"phase\">{}</strong>",
        esc(phase(p.phase)),
        p.release,
        esc(&p.release.to_hex()[..12]),
        if p.delta { "delta" } else { "full" },
        esc(phase(p.phase))
    );
    let _ = write!(
        o,
        "</p><progress max=\"{}\" value=\"{}\"></progress> <span>{} of {} bytes</span>",
        p.total.max(1),
        p.done.min(p.total),
        p.done,
        p.total
    );
    if let Some(pp) = &p.postponed {
        let _ = write!(
            o,
            "<p class=\"warn\">Postponed: {}</p>",
            esc(&postponement(pp))
        );
    }
    if let Some(e) = &p.error {
        let _ = write!(o, "<p class=\"error\">{}</p>", esc(e));
    }
    if progress_running(p) {
        o.push_str("<p class=\"muted\">This page reloads every second while the push runs.</p>");
    }
    o.push_str("</section>");
    o
}

// ----- login ---------------------------------------------------------------------------------

#[derive(Deserialize)]
struct NextQ {
    #[serde(default)]
    next: Option<String>,
}

/// Only a local path: no scheme, no `//host`, no backslash tricks.
fn safe_next(n: Option<&str>) -> String {
    match n {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p.into(),
        _ => "/".into(),
    }
}

async fn login_page(Query(q): Query<NextQ>) -> Response {
    login_form(&safe_next(q.next.as_deref()), None, StatusCode::OK)
}

fn login_form(next: &str, error: Option<&str>, status: StatusCode) -> Response {
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
struct LoginIn {
    token: String,
    #[serde(default)]
    next: Option<String>,
}

async fn login(State(w): State<Web>, Form(f): Form<LoginIn>) -> Response {
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

async fn logout(State(w): State<Web>, axum::Extension(s): axum::Extension<Sess>) -> Response {
    w.sessions.remove(&s.id);
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("keyway_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    r
}

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

type S = axum::Extension<Sess>;

async fn locks_page(State(w): State<Web>, axum::Extension(s): S) -> WR {
    let hub = w.api.hub.clone();
    let (locks, models, now, offers) = blocking(move || {
        let locks = hub.locks()?;
        // The newest release offered to each lock with a status (none: up to date).
        let mut offers = HashMap::new();
        for l in locks.iter().filter(|l| l.snapshot.is_some()) {
            if let Some(o) = hub.updates(l.id)?.into_iter().max_by_key(|o| o.sequence) {
                offers.insert(l.id, o);
            }
        }
        Ok((locks, hub.store().models()?, hub.now(), offers))
    })
    .await?;
    let progress = w.api.hub.progress();
    let mut b = String::from("<h1>Locks</h1>");
    if locks.is_empty() {
        b.push_str("<p>No locks yet: add one below.</p>");
    } else {
        b.push_str("<table class=\"locks\"><thead><tr><th>Lock</th><th>Model</th><th>Version</th><th>Update</th><th>Battery</th><th>Door</th><th>Bolt</th><th>Last contact</th><th>Audit log</th></tr></thead><tbody>");
        for l in &locks {
            let _ = write!(
                b,
                "<tr><td><a href=\"/locks/{}\">{}</a>{}</td><td>{}</td>",
                l.id,
                esc(&l.name),
                if l.device_key.is_none() {
                    " <span class=\"warn\">(not paired)</span>"
                } else {
                    ""
                },
                esc(&l.class)
            );
            match &l.snapshot {
                Some(sn) => {
                    let mut upd = update_state(&sn.update);
                    if let Some(o) = offers.get(&l.id) {
                        let _ = write!(
                            upd,
                            "<br><a href=\"/locks/{}\">{} available</a> {}",
                            l.id,
                            esc(&o.version),
                            o.max_severity.map(html::severity).unwrap_or_default()
                        );
                    }
                    if let Some(p) = progress
                        .iter()
                        .find(|p| p.lock == l.id && progress_running(p))
                    {
                        let _ = write!(
                            upd,
                            " <span class=\"warn\">({} {}%)</span>",
                            phase(p.phase),
                            p.done * 100 / p.total.max(1)
                        );
                    }
                    let _ = write!(
                        b,
                        "<td>{}</td><td>{}</td><td>{} mWh</td><td>{}</td><td>{}</td>",
                        esc(&sn.version),
                        upd,
                        sn.battery_mwh,
                        match sn.door {
                            crate::model::Door::Open => "open",
                            crate::model::Door::Closed => "closed",
                        },
                        match sn.bolt {
                            crate::model::Bolt::Locked => "locked",
                            crate::model::Bolt::Unlocked => "unlocked",
                        },
                    );
                }
                None => b.push_str("<td colspan=\"5\" class=\"muted\">no status yet</td>"),
            }
            let _ = write!(
                b,
                "<td>{}</td><td>{}</td></tr>",
                l.last_contact
                    .map(|t| esc(&html::ago(t, now)))
                    .unwrap_or_else(|| "never".into()),
                log_health(&l.log)
            );
        }
        b.push_str("</tbody></table>");
    }
    let _ = write!(
        b,
        "<h2>Add a lock</h2><form method=\"post\" action=\"/locks\" class=\"card\">{}\
         <label>Name <input name=\"name\" required maxlength=\"100\" placeholder=\"Front door\"></label>\
         <label>Address <input name=\"address\" required maxlength=\"200\" placeholder=\"udp:192.168.1.20:1337\"></label>\
         <label>Model <select name=\"class\" required>",
        csrf_field(&s.csrf)
    );
    for m in &models {
        let _ = write!(
            b,
            "<option value=\"{0}\">{0} ({1})</option>",
            esc(&m.class),
            esc(&m.vendor_domain)
        );
    }
    b.push_str("</select></label><button type=\"submit\">Add</button></form>");
    if models.is_empty() {
        b.push_str("<p class=\"muted\">No lock models are known yet: add one through the API (<code>POST /api/models</code>) or <code>keyway hub serve --model</code>.</p>");
    }
    frame(&w, "Locks", &s, None, &b).await
}

async fn lock_page(State(w): State<Web>, axum::Extension(s): S, Path(id): Path<String>) -> WR {
    let id = lock_id(&id)?;
    let hub = w.api.hub.clone();
    let (lock, logs, now) = blocking(move || Ok((hub.lock(id)?, hub.logs(id)?, hub.now()))).await?;
    let updates = if lock.snapshot.is_some() {
        actions::updates(w.api.hub.clone(), id).await?
    } else {
        Vec::new()
    };
    let progress = w.api.hub.progress_of(id);
    let c = csrf_field(&s.csrf);
    let mut b = format!("<h1>{}</h1>", esc(&lock.name));
    lock_summary(&mut b, &lock, now);
    if lock.device_key.is_none() {
        let _ = write!(
            b,
            "<h2>Pair</h2><form method=\"post\" action=\"/locks/{id}/pair\" class=\"card\">{c}\
             <p>Press the lock's button to open its presence window, then type the setup code from its label.</p>\
             <label>Setup code <input name=\"setup_code\" required maxlength=\"64\" autocomplete=\"off\"></label>\
             <button type=\"submit\">Pair</button></form>"
        );
    } else {
        let _ = write!(
            b,
            "<div class=\"actions\"><form method=\"post\" action=\"/locks/{id}/refresh\" class=\"inline\">{c}<button type=\"submit\">Refresh status</button></form>\
             <form method=\"post\" action=\"/locks/{id}/logs/fetch\" class=\"inline\">{c}<button type=\"submit\">Fetch audit log</button></form></div>"
        );
    }
    if let Some(p) = &progress {
        b.push_str(&progress_html(p));
    }
    b.push_str("<h2>Updates</h2>");
    if lock.snapshot.is_none() {
        b.push_str("<p class=\"muted\">Pair the lock and read its status to see its updates.</p>");
    } else if updates.is_empty() {
        b.push_str("<p>This lock is up to date with every release the hub holds.</p>");
    }
    for u in &updates {
        let o = &u.offer;
        let _ = write!(
            b,
            "<article class=\"update card\"><h3>Version {} <span class=\"muted\">(sequence {})</span> {}</h3>",
            esc(&o.version),
            o.sequence,
            o.max_severity.map(html::severity).unwrap_or_default()
        );
        if !o.cves.is_empty() {
            b.push_str("<ul class=\"cves\">");
            for cve in &o.cves {
                let _ = write!(
                    b,
                    "<li><code>{}</code> {}</li>",
                    esc(&cve.id),
                    html::severity(cve.severity)
                );
            }
            b.push_str("</ul>");
        }
        b.push_str(&html::notes(&o.notes));
        let _ = write!(
            b,
            "<p class=\"muted\">{} · <a href=\"/releases/{}\">release page</a></p>",
            if o.delta {
                "a delta for this lock's image"
            } else {
                "full image"
            },
            o.release
        );
        let rel = o.release.to_hex();
        match u.decision {
            Some(Decision::Accept) => {
                let _ = write!(
                    b,
                    "<p><span class=\"ok\">You accepted this update.</span></p>\
                     <form method=\"post\" action=\"/locks/{id}/install\" class=\"inline\">{c}<input type=\"hidden\" name=\"release\" value=\"{rel}\"><button type=\"submit\">Push again</button></form>"
                );
            }
            d => {
                if d == Some(Decision::Decline) {
                    b.push_str("<p>You declined this update.</p>");
                }
                let _ = write!(
                    b,
                    "<form method=\"post\" action=\"/locks/{id}/consent\" class=\"inline\">{c}<input type=\"hidden\" name=\"release\" value=\"{rel}\"><input type=\"hidden\" name=\"decision\" value=\"accept\"><button type=\"submit\" class=\"primary\">Install {}</button></form>\
                     <form method=\"post\" action=\"/locks/{id}/consent\" class=\"inline\">{c}<input type=\"hidden\" name=\"release\" value=\"{rel}\"><input type=\"hidden\" name=\"decision\" value=\"decline\"><button type=\"submit\">Decline</button></form>",
                    esc(&o.version)
                );
            }
        }
        b.push_str("</article>");
    }
    let _ = write!(
        b,
        "<h2>Automatic installs</h2><form method=\"post\" action=\"/locks/{id}/auto-install\" class=\"card\">{c}<p>{}</p>\
         <input type=\"hidden\" name=\"enabled\" value=\"{}\"><button type=\"submit\">{}</button></form>",
        if lock.auto_install_critical {
            "On: the hub installs updates that fix high or critical CVEs without asking."
        } else {
            "Off: every update waits for your consent."
        },
        !lock.auto_install_critical,
        if lock.auto_install_critical {
            "Turn off"
        } else {
            "Install high and critical CVE fixes automatically"
        }
    );
    let _ = write!(
        b,
        "<h2>Audit log</h2><p>{}</p><p>{} export(s) kept. <a href=\"/audit#lock-{id}\">See the audit log view</a>.</p>",
        log_health(&lock.log),
        logs.len()
    );
    let _ = write!(
        b,
        "<h2>Remove</h2><form method=\"post\" action=\"/locks/{id}/remove\" class=\"inline\">{c}<button type=\"submit\" class=\"danger\">Remove this lock from the hub</button></form>"
    );
    let refresh = progress.as_ref().filter(|p| progress_running(p)).map(|_| 1);
    frame(&w, &lock.name, &s, refresh, &b).await
}

fn lock_summary(b: &mut String, l: &LockRecord, now: i64) {
    b.push_str("<dl class=\"summary\">");
    let _ = write!(
        b,
        "<dt>Model</dt><dd>{}</dd><dt>Address</dt><dd><code>{}</code></dd><dt>Paired</dt><dd>{}</dd>",
        esc(&l.class),
        esc(&l.address),
        if l.device_key.is_some() { "yes" } else { "no" }
    );
    if let Some(sn) = &l.snapshot {
        let _ = write!(
            b,
            "<dt>Version</dt><dd id=\"version\">{}</dd><dt>Update</dt><dd>{}</dd><dt>Battery</dt><dd>{} mWh</dd><dt>Door</dt><dd>{}</dd><dt>Bolt</dt><dd>{}</dd>{}",
            esc(&sn.version),
            update_state(&sn.update),
            sn.battery_mwh,
            match sn.door {
                crate::model::Door::Open => "open",
                crate::model::Door::Closed => "closed",
            },
            match sn.bolt {
                crate::model::Bolt::Locked => "locked",
                crate::model::Bolt::Unlocked => "unlocked",
            },
            if sn.tamper {
                "<dt>Tamper</dt><dd class=\"alert\">the lock reports tampering</dd>"
            } else {
                ""
            }
        );
    }
    let _ = write!(
        b,
        "<dt>Last contact</dt><dd>{}</dd><dt>Audit log</dt><dd>{}</dd></dl>",
        l.last_contact
            .map(|t| format!("{} ({})", esc(&html::time(t)), esc(&html::ago(t, now))))
            .unwrap_or_else(|| "never".into()),
        log_health(&l.log)
    );
}

async fn audit_page(State(w): State<Web>, axum::Extension(s): S) -> WR {
    let hub = w.api.hub.clone();
    let (locks, events) = blocking(move || {
        let locks = hub.locks()?;
        let mut per = Vec::new();
        for l in locks {
            let logs = hub.logs(l.id)?;
            per.push((l, logs));
        }
        // The newest 1,000 events are enough for the page: page through them.
        let mut events = Vec::new();
        let mut after = 0;
        loop {
            let batch = hub.store().events(after, 1000)?;
            let Some(last) = batch.last() else { break };
            after = last.id;
            events.extend(batch.into_iter().filter(|e| e.level >= EventLevel::Warning));
            if events.len() > 2000 {
                events.drain(..events.len() - 200);
            }
        }
        Ok((per, events))
    })
    .await?;
    let c = csrf_field(&s.csrf);
    let mut b = String::from(
        "<h1>Audit log</h1><p>The hub fetches each lock's signed audit log on a schedule, verifies it with the lock's device key, keeps it, and alerts on any break or gap.</p>",
    );
    b.push_str("<h2>Alerts</h2>");
    if events.is_empty() {
        b.push_str("<p class=\"ok\">No alerts or warnings.</p>");
    } else {
        b.push_str("<table><thead><tr><th>When</th><th>Level</th><th>Lock</th><th>What</th></tr></thead><tbody>");
        for e in events.iter().rev().take(100) {
            let _ = write!(
                b,
                "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td><code>{}</code> {}</td></tr>",
                esc(&html::time(e.at)),
                if e.level == EventLevel::Alert {
                    "alert"
                } else {
                    "warn"
                },
                if e.level == EventLevel::Alert {
                    "alert"
                } else {
                    "warning"
                },
                e.lock
                    .map(|l| format!("<a href=\"/locks/{l}\">{l}</a>"))
                    .unwrap_or_default(),
                esc(&e.kind),
                esc(&e.message)
            );
        }
        b.push_str("</tbody></table>");
    }
    for (l, logs) in &locks {
        let _ = write!(
            b,
            "<section id=\"lock-{0}\"><h2><a href=\"/locks/{0}\">{1}</a></h2><p>Health: {2}</p>",
            l.id,
            esc(&l.name),
            log_health(&l.log)
        );
        if logs.is_empty() {
            b.push_str("<p class=\"muted\">No exports kept yet.</p>");
        } else {
            b.push_str("<table><thead><tr><th>Fetched</th><th>Records</th><th>Size</th><th></th></tr></thead><tbody>");
            for (n, x) in logs.iter().enumerate().rev() {
                let _ = write!(
                    b,
                    "<tr><td>{}</td><td>{} to {}</td><td>{} bytes</td><td><a href=\"/locks/{}/logs/{n}\">download</a></td></tr>",
                    esc(&html::time(x.fetched_at)),
                    x.first_seq,
                    x.last_seq,
                    x.bytes.len(),
                    l.id
                );
            }
            b.push_str("</tbody></table>");
        }
        if l.device_key.is_some() {
            let _ = write!(
                b,
                "<form method=\"post\" action=\"/locks/{}/logs/fetch\" class=\"inline\">{c}<button type=\"submit\">Fetch now</button></form>",
                l.id
            );
        }
        b.push_str("</section>");
    }
    frame(&w, "Audit log", &s, None, &b).await
}

async fn import_page(State(w): State<Web>, axum::Extension(s): S) -> WR {
    let b = import_form(&s, "");
    frame(&w, "Import", &s, None, &b).await
}

fn import_form(s: &Sess, path: &str) -> String {
    format!(
        "<h1>Import a bundle</h1><p>An offline bundle (from <code>keyway publish --bundle</code>, on a USB stick): the hub verifies its TUF metadata chain, then every envelope against its model's anchors, with no network.</p>\
         <form method=\"post\" action=\"/import\" class=\"card\">{}<label>Bundle directory <input name=\"path\" required maxlength=\"4096\" value=\"{}\" placeholder=\"/media/usb/keyway-bundle\"></label><button type=\"submit\">Import</button></form>",
        csrf_field(&s.csrf),
        esc(path)
    )
}

#[derive(Deserialize)]
struct ImportIn {
    path: String,
}

async fn import(State(w): State<Web>, axum::Extension(s): S, Form(f): Form<ImportIn>) -> WR {
    let mut b = import_form(&s, &f.path);
    match actions::import(&w.api, f.path.clone()).await {
        Ok(out) => {
            let r = &out.report;
            let _ = write!(
                b,
                "<h2>Result</h2><p id=\"import-summary\">{} imported, {} already held, {} refused.</p>",
                r.imported.len(),
                r.already_held.len(),
                r.refused.len() + out.refused_by_tuf.len()
            );
            if !r.imported.is_empty() {
                b.push_str("<h3>Imported</h3><table><thead><tr><th>Target</th><th>Model</th><th>Version</th></tr></thead><tbody>");
                for i in &r.imported {
                    let _ = write!(
                        b,
                        "<tr><td><a href=\"/releases/{}\">{}</a></td><td>{}</td><td>{}</td></tr>",
                        i.digest,
                        esc(&i.target),
                        esc(&i.class),
                        esc(&i.version)
                    );
                }
                b.push_str("</tbody></table>");
            }
            if !r.already_held.is_empty() {
                b.push_str("<h3>Already held</h3><ul>");
                for t in &r.already_held {
                    let _ = write!(b, "<li>{}</li>", esc(t));
                }
                b.push_str("</ul>");
            }
            if !r.refused.is_empty() || !out.refused_by_tuf.is_empty() {
                b.push_str("<h3>Refused</h3><table class=\"refused\"><thead><tr><th>Target</th><th>Why</th></tr></thead><tbody>");
                for x in &r.refused {
                    let code = serde_json::to_value(&x.reason)
                        .ok()
                        .and_then(|v| v.get("code").and_then(|c| c.as_str()).map(str::to_string))
                        .unwrap_or_default();
                    let _ = write!(
                        b,
                        "<tr><td>{}</td><td><code>{}</code> {}</td></tr>",
                        esc(&x.target),
                        esc(&code),
                        esc(&x.message)
                    );
                }
                for x in &out.refused_by_tuf {
                    let _ = write!(
                        b,
                        "<tr><td>{}</td><td><code>tuf</code> {}</td></tr>",
                        esc(x["target"].as_str().unwrap_or("")),
                        esc(x["message"].as_str().unwrap_or(""))
                    );
                }
                b.push_str("</tbody></table>");
            }
        }
        Err(e) => {
            let _ = write!(
                b,
                "<h2>Result</h2><p class=\"error\" id=\"import-summary\">Nothing imported: <code>{}</code> {}</p>",
                esc(e.code),
                esc(&e.message)
            );
        }
    }
    frame(&w, "Import", &s, None, &b).await
}

async fn releases_page(State(w): State<Web>, axum::Extension(s): S) -> WR {
    let hub = w.api.hub.clone();
    let releases = blocking(move || Ok(hub.store().releases(None)?)).await?;
    let mut b = String::from("<h1>Releases</h1>");
    if releases.is_empty() {
        b.push_str("<p>The hub holds no releases yet: it syncs them from the vendor's repository, or import a bundle.</p>");
    } else {
        b.push_str("<table><thead><tr><th>Model</th><th>Version</th><th>Kind</th><th>CVEs</th><th>Added</th></tr></thead><tbody>");
        for r in &releases {
            let _ = write!(
                b,
                "<tr><td>{}</td><td><a href=\"/releases/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&r.class),
                r.digest,
                esc(&r.version),
                if r.delta_base.is_some() {
                    "delta"
                } else {
                    "full"
                },
                r.cves
                    .iter()
                    .map(|c| format!("<code>{}</code> {}", esc(&c.id), html::severity(c.severity)))
                    .collect::<Vec<_>>()
                    .join(", "),
                esc(&html::time(r.added_at))
            );
        }
        b.push_str("</tbody></table>");
    }
    frame(&w, "Releases", &s, None, &b).await
}

async fn release_page(State(w): State<Web>, axum::Extension(s): S, Path(d): Path<String>) -> WR {
    let d = digest(&d)?;
    let hub = w.api.hub.clone();
    let (r, locks) = blocking(move || {
        let r = hub
            .store()
            .release(&d)?
            .ok_or(crate::engine::HubError::NoRelease(d))?;
        let locks: Vec<LockRecord> = hub
            .locks()?
            .into_iter()
            .filter(|l| l.class == r.class)
            .collect();
        Ok((r, locks))
    })
    .await?;
    let mut b = format!("<h1>{} {}</h1>", esc(&r.class), esc(&r.version));
    let _ = write!(
        b,
        "<dl class=\"summary\"><dt>Target</dt><dd><code>{}</code></dd><dt>Digest</dt><dd><code>{}</code></dd><dt>Sequence</dt><dd>{}</dd><dt>Kind</dt><dd>{}</dd><dt>From</dt><dd>{}</dd><dt>Added</dt><dd>{}</dd></dl>",
        esc(&r.target),
        r.digest,
        r.sequence,
        match &r.delta_base {
            Some(base) => format!(
                "delta from image <code>{}</code>",
                esc(&base.to_hex()[..16])
            ),
            None => "full image".into(),
        },
        match &r.origin {
            crate::model::ReleaseOrigin::Tuf { url } =>
                format!("the vendor repository <code>{}</code>", esc(url)),
            crate::model::ReleaseOrigin::Bundle { path } =>
                format!("an offline bundle <code>{}</code>", esc(path)),
        },
        esc(&html::time(r.added_at))
    );
    b.push_str("<h2>Fixes</h2>");
    if r.cves.is_empty() {
        b.push_str("<p>No CVEs named.</p>");
    } else {
        b.push_str("<ul class=\"cves\">");
        for cve in &r.cves {
            let _ = write!(
                b,
                "<li><code>{}</code> {}</li>",
                esc(&cve.id),
                html::severity(cve.severity)
            );
        }
        b.push_str("</ul>");
    }
    b.push_str("<h2>Release notes</h2>");
    b.push_str(&html::notes(&r.notes));
    if !locks.is_empty() {
        b.push_str("<h2>Locks of this model</h2><ul>");
        for l in &locks {
            let _ = write!(
                b,
                "<li><a href=\"/locks/{}\">{}</a>: {}</li>",
                l.id,
                esc(&l.name),
                l.snapshot
                    .as_ref()
                    .map(|s| format!("runs {}", esc(&s.version)))
                    .unwrap_or_else(|| "no status yet".into())
            );
        }
        b.push_str("</ul>");
    }
    frame(&w, &format!("{} {}", r.class, r.version), &s, None, &b).await
}

// ----- actions --------------------------------------------------------------------------------

#[derive(Deserialize)]
struct LockIn {
    name: String,
    address: String,
    class: String,
}

async fn lock_add(State(w): State<Web>, Form(f): Form<LockIn>) -> WR {
    let hub = w.api.hub.clone();
    let new = NewLock {
        name: f.name,
        address: f.address,
        class: f.class,
    };
    let l = blocking(move || hub.add_lock(&new)).await?;
    see(&format!("/locks/{}", l.id))
}

#[derive(Deserialize)]
struct PairIn {
    setup_code: String,
}

async fn lock_pair(State(w): State<Web>, Path(id): Path<String>, Form(f): Form<PairIn>) -> WR {
    let id = lock_id(&id)?;
    let hub = w.api.hub.clone();
    blocking(move || {
        hub.pair(id, f.setup_code.trim())?;
        // Read its status at once so the page shows it.
        hub.refresh(id)
    })
    .await?;
    see(&format!("/locks/{id}"))
}

async fn lock_refresh(State(w): State<Web>, Path(id): Path<String>) -> WR {
    let id = lock_id(&id)?;
    let hub = w.api.hub.clone();
    blocking(move || hub.refresh(id)).await?;
    see(&format!("/locks/{id}"))
}

#[derive(Deserialize)]
struct ConsentIn {
    release: String,
    decision: Decision,
}

async fn lock_consent(
    State(w): State<Web>,
    Path(id): Path<String>,
    Form(f): Form<ConsentIn>,
) -> WR {
    let id = lock_id(&id)?;
    let release = digest(&f.release)?;
    actions::consent(
        w.api.hub.clone(),
        id,
        release,
        f.decision,
        ConsentSource::Owner,
    )
    .await?;
    see(&format!("/locks/{id}"))
}

#[derive(Deserialize)]
struct InstallIn {
    release: String,
}

async fn lock_install(
    State(w): State<Web>,
    Path(id): Path<String>,
    Form(f): Form<InstallIn>,
) -> WR {
    let id = lock_id(&id)?;
    let release = digest(&f.release)?;
    actions::install(w.api.hub.clone(), id, release).await?;
    see(&format!("/locks/{id}"))
}

#[derive(Deserialize)]
struct AutoIn {
    enabled: bool,
}

async fn lock_auto(State(w): State<Web>, Path(id): Path<String>, Form(f): Form<AutoIn>) -> WR {
    let id = lock_id(&id)?;
    let hub = w.api.hub.clone();
    blocking(move || hub.set_auto_install(id, f.enabled)).await?;
    see(&format!("/locks/{id}"))
}

async fn lock_log_fetch(State(w): State<Web>, Path(id): Path<String>) -> WR {
    let id = lock_id(&id)?;
    let hub = w.api.hub.clone();
    blocking(move || hub.fetch_log(id)).await?;
    see(&format!("/audit#lock-{id}"))
}

async fn lock_remove(State(w): State<Web>, Path(id): Path<String>) -> WR {
    let id = lock_id(&id)?;
    let hub = w.api.hub.clone();
    blocking(move || hub.remove_lock(id)).await?;
    see("/")
}

async fn lock_log_download(State(w): State<Web>, Path((id, n)): Path<(String, String)>) -> WR {
    let id = lock_id(&id)?;
    let n: usize = n.parse().map_err(|_| {
        bad(
            StatusCode::BAD_REQUEST,
            "bad_path",
            "a log index is an integer",
        )
    })?;
    let hub = w.api.hub.clone();
    let logs = blocking(move || hub.logs(id)).await?;
    let Some(l) = logs.into_iter().nth(n) else {
        return Err(bad(
            StatusCode::NOT_FOUND,
            "unknown_log",
            format!("lock {id} has no kept log export {n}"),
        ));
    };
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"lock-{id}-log-{}-{}.bin\"",
                    l.first_seq, l.last_seq
                ),
            ),
        ],
        l.bytes,
    )
        .into_response())
}
