//! The hub's JSON API (axum): everything the hub does, for the web UI,
//! Home Assistant and scripts.
//!
//! * Every route but `GET /api/health` needs `Authorization: Bearer
//!   TOKEN`; the token is compared in constant time (both sides hashed
//!   with SHA-256 first, so not even the length leaks). A missing or wrong
//!   token is `401 unauthorized`.
//! * Every error is one JSON shape, `{"error": {"code": "...", "message":
//!   "..."}}`: clients decide on `code` (stable, listed in the OpenAPI
//!   document), never on the message.
//! * Request bodies are bounded ([`MAX_BODY_BYTES`]), request structs
//!   reject unknown fields, path parameters are typed (a bad id is `400
//!   bad_path`, a bad digest `400 bad_digest`), and a request that fails
//!   changes nothing.
//! * The hub's calls are blocking (store, locks): each runs in
//!   `spawn_blocking`. An accepted consent and a new rollout return `202`
//!   at once; the push runs in the background and `GET .../progress` shows
//!   it live.
//! * `GET /api/openapi.json` serves the OpenAPI 3.1 document
//!   (`src/api/openapi.json`, hand-written); a test checks that it and
//!   [`ROUTES`] name the same routes, and `scripts/openapi-check.sh`
//!   validates it with an independent validator.

use std::net::SocketAddr;
use std::path::Path as FsPath;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

pub mod actions;
mod extract;
mod locks;

pub use extract::{Body, PathArg, QueryArg};
pub use locks::{AutoIn, ConsentIn, InstallIn, LockIn, PairIn};
use locks::{
    lock_auto, lock_consent, lock_consents, lock_install, lock_log_download, lock_log_fetch,
    lock_logs, lock_one, lock_pair, lock_progress, lock_refresh, lock_remove, lock_updates,
    locks_add, locks_list,
};

use crate::engine::{Hub, HubError, Incoming};
use crate::model::{Digest, LockId, ModelAnchors};

/// The largest request body the API reads.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Requests the API serves at once; more wait (bounded memory under a
/// flood from a token holder).
pub const MAX_IN_FLIGHT: usize = 64;

/// The OpenAPI 3.1 document describing every route.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Why the shell could not read releases in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// Nothing at that path.
    #[error("no bundle at {0}")]
    NotFound(String),
    /// The bundle's TUF metadata did not verify (a corrupt or hostile
    /// bundle): nothing was imported.
    #[error("the bundle was refused: {0}")]
    Refused(String),
    /// It could not be read.
    #[error("the bundle could not be read: {0}")]
    Unreadable(String),
}

impl SourceError {
    /// Its stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            SourceError::NotFound(_) => "bundle_not_found",
            SourceError::Refused(_) => "bundle_refused",
            SourceError::Unreadable(_) => "bundle_unreadable",
        }
    }
}

/// What the shell read from a bundle: the envelopes its TUF metadata
/// vouches for (the hub then verifies each against its model's anchors),
/// and the targets the TUF layer itself refused, with why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundleRead {
    /// Envelopes to ingest.
    pub incoming: Vec<Incoming>,
    /// Targets refused by TUF verification: (target path, why).
    pub refused: Vec<(String, String)>,
}

/// Releases in, implemented by the shell (TUF and bundle reading are
/// `keyway-tuf`'s): `POST /api/imports {path}` calls it, then
/// [`Hub::ingest`] verifies what it returns.
pub trait ReleasesIn: Send + Sync {
    /// Reads the offline bundle at `path` (a directory or a mounted stick),
    /// verifying its TUF metadata chain.
    fn read_bundle(&self, path: &FsPath) -> Result<BundleRead, SourceError>;
}

/// What the API serves.
#[derive(Clone)]
pub struct Api {
    /// The hub.
    pub hub: Arc<Hub>,
    /// How `POST /api/imports` reads bundles (`None`: imports are
    /// unavailable, `501 imports_unavailable`).
    pub releases_in: Option<Arc<dyn ReleasesIn>>,
    /// The bearer token every route but health requires.
    pub token: String,
}

/// An API error: a status and the one JSON error shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable machine code.
    pub code: &'static str,
    /// In words.
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response()
    }
}

/// The HTTP status for a hub error code.
pub fn status_of(code: &str) -> StatusCode {
    match code {
        "unknown_lock" | "unknown_release" | "unknown_rollout" | "unknown_log" => {
            StatusCode::NOT_FOUND
        }
        "release_not_applicable"
        | "consent_required"
        | "lock_busy"
        | "lock_not_paired"
        | "lock_already_paired"
        | "presence_window_closed"
        | "nothing_to_push" => StatusCode::CONFLICT,
        "wrong_setup_code" => StatusCode::FORBIDDEN,
        "lock_unreachable" => StatusCode::GATEWAY_TIMEOUT,
        "lock_refused"
        | "lock_not_authenticated"
        | "lock_answer_malformed"
        | "lock_lied"
        | "log_broken" => StatusCode::BAD_GATEWAY,
        "store_full" => StatusCode::INSUFFICIENT_STORAGE,
        "invalid_value" | "bad_model" => StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_text" => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<HubError> for ApiError {
    fn from(e: HubError) -> ApiError {
        let code = e.code();
        ApiError::new(status_of(code), code, e.to_string())
    }
}

pub(crate) fn digest(s: &str) -> Result<Digest, ApiError> {
    Digest::from_hex(s)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_digest", e.to_string()))
}

impl Api {
    /// Runs `op` on the hub off the async runtime (see [`blocking`]).
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Hub) -> Result<T, HubError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let hub = self.hub.clone();
        blocking(move || op(&hub)).await
    }
}

/// Runs a blocking hub call.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, HubError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the hub's task failed: {e}"),
        )),
    }
}

type ApiResult = Result<Response, ApiError>;

fn ok<T: Serialize>(v: T) -> ApiResult {
    Ok(Json(v).into_response())
}

fn with_status<T: Serialize>(s: StatusCode, v: T) -> ApiResult {
    Ok((s, Json(v)).into_response())
}

// ----- request bodies ----------------------------------------------------------

/// `POST /api/models`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelIn {
    class: String,
    vendor_domain: String,
    trust_pems: Vec<String>,
    threshold: u8,
}

/// `POST /api/rollouts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutIn {
    release: String,
    wave_size: u32,
    error_threshold_pct: u8,
    #[serde(default)]
    locks: Option<Vec<LockId>>,
}

/// `POST /api/imports`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportIn {
    path: String,
}

/// `GET /api/events` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQ {
    #[serde(default)]
    after: i64,
    #[serde(default)]
    limit: Option<u32>,
}

// ----- handlers ------------------------------------------------------------------

async fn health() -> ApiResult {
    ok(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

async fn openapi() -> ApiResult {
    Ok(([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response())
}

async fn models_list(State(a): State<Api>) -> ApiResult {
    ok(json!({"models": a.run(move |hub| Ok(hub.store().models()?)).await?}))
}

async fn models_put(State(a): State<Api>, Body(m): Body<ModelIn>) -> ApiResult {
    let model = ModelAnchors {
        class: m.class,
        vendor_domain: m.vendor_domain,
        trust_pems: m.trust_pems,
        threshold: m.threshold,
    };
    let m2 = model.clone();
    a.run(move |hub| hub.put_model(&m2)).await?;
    with_status(StatusCode::CREATED, model)
}

async fn releases_list(State(a): State<Api>) -> ApiResult {
    ok(json!({"releases": a.run(move |hub| Ok(hub.store().releases(None)?)).await?}))
}

async fn release_one(State(a): State<Api>, PathArg(d): PathArg<String>) -> ApiResult {
    let d = digest(&d)?;
    let r = a
        .run(move |hub| hub.store().release(&d)?.ok_or(HubError::NoRelease(d)))
        .await?;
    ok(r)
}

async fn imports(State(a): State<Api>, Body(i): Body<ImportIn>) -> ApiResult {
    ok(actions::import(&a, i.path).await?)
}

async fn progress_all(State(a): State<Api>) -> ApiResult {
    ok(json!({"progress": a.hub.progress()}))
}

async fn rollouts_list(State(a): State<Api>) -> ApiResult {
    ok(json!({"rollouts": a.run(move |hub| Ok(hub.store().rollouts()?)).await?}))
}

async fn rollouts_create(State(a): State<Api>, Body(r): Body<RolloutIn>) -> ApiResult {
    let release = digest(&r.release)?;
    let rollout = a
        .run(move |hub| {
            hub.create_rollout(
                release,
                r.wave_size,
                r.error_threshold_pct,
                r.locks.as_deref(),
            )
        })
        .await?;
    let hub = a.hub.clone();
    let id = rollout.id;
    tokio::task::spawn_blocking(move || {
        let _ = hub.run_rollout(id);
    });
    with_status(StatusCode::ACCEPTED, rollout)
}

/// `POST /api/rollouts/{id}/resume`: the owner resumes a stopped rollout;
/// its waves run in the background (`202`, the rollout as it starts).
async fn rollout_resume(State(a): State<Api>, PathArg(id): PathArg<i64>) -> ApiResult {
    let rollout = a.run(move |hub| {
        let r = hub.rollout(id)?;
        if !matches!(r.state, crate::model::RolloutState::Stopped { .. }) {
            return Err(HubError::Invalid(format!(
                "rollout {id} is not stopped: only a rollout its error threshold stopped resumes"
            )));
        }
        Ok(r)
    })
    .await?;
    let hub = a.hub.clone();
    tokio::task::spawn_blocking(move || {
        let _ = hub.resume_rollout(id);
    });
    with_status(StatusCode::ACCEPTED, rollout)
}

/// `POST /api/sync`: sync the release source now (`501 sync_unavailable`
/// when the shell gave the hub no way to).
async fn sync_now(State(a): State<Api>) -> ApiResult {
    let hub = a.hub.clone();
    let r = tokio::task::spawn_blocking(move || hub.sync_now())
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    match r {
        Ok(Some(report)) => ok(report),
        Ok(None) => Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "sync_unavailable",
            "this hub has no release repository to sync with (offline: import a bundle)",
        )),
        Err(e) => {
            let code = e.code();
            let status = match &e {
                crate::engine::SyncError::Unreachable(_) => StatusCode::GATEWAY_TIMEOUT,
                crate::engine::SyncError::Refused(_) => StatusCode::BAD_GATEWAY,
                crate::engine::SyncError::Hub(_) => status_of(code),
            };
            Err(ApiError::new(status, code, e.to_string()))
        }
    }
}

async fn rollout_one(State(a): State<Api>, PathArg(id): PathArg<i64>) -> ApiResult {
    ok(a.run(move |hub| hub.rollout(id)).await?)
}

async fn events(State(a): State<Api>, QueryArg(q): QueryArg<EventsQ>) -> ApiResult {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    ok(json!({"events": a.run(move |hub| Ok(hub.store().events(q.after, limit)?)).await?}))
}

async fn freshness(State(a): State<Api>) -> ApiResult {
    ok(a.run(move |hub| hub.freshness()).await?)
}

// ----- the router ------------------------------------------------------------------

macro_rules! api_routes {
    ($($method:ident $path:literal => $handler:path;)*) => {
        /// Every authenticated route (method, path), as the OpenAPI
        /// document names them (`GET /api/health` is the one without a
        /// token).
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        fn authenticated() -> Router<Api> {
            Router::new()$(.route($path, axum::routing::$method($handler)))*
        }
    };
}

api_routes! {
    get "/api/openapi.json" => openapi;
    get "/api/models" => models_list;
    post "/api/models" => models_put;
    get "/api/releases" => releases_list;
    get "/api/releases/{digest}" => release_one;
    post "/api/imports" => imports;
    get "/api/locks" => locks_list;
    post "/api/locks" => locks_add;
    get "/api/locks/{id}" => lock_one;
    delete "/api/locks/{id}" => lock_remove;
    post "/api/locks/{id}/pair" => lock_pair;
    post "/api/locks/{id}/refresh" => lock_refresh;
    get "/api/locks/{id}/updates" => lock_updates;
    get "/api/locks/{id}/consents" => lock_consents;
    post "/api/locks/{id}/consents" => lock_consent;
    post "/api/locks/{id}/install" => lock_install;
    put "/api/locks/{id}/auto-install" => lock_auto;
    get "/api/locks/{id}/progress" => lock_progress;
    get "/api/locks/{id}/logs" => lock_logs;
    post "/api/locks/{id}/logs/fetch" => lock_log_fetch;
    get "/api/locks/{id}/logs/{index}" => lock_log_download;
    get "/api/progress" => progress_all;
    get "/api/rollouts" => rollouts_list;
    post "/api/rollouts" => rollouts_create;
    post "/api/rollouts/{id}/resume" => rollout_resume;
    post "/api/sync" => sync_now;
    get "/api/rollouts/{id}" => rollout_one;
    get "/api/events" => events;
    get "/api/freshness" => freshness;
}

/// The credentials of an `Authorization: Bearer …` value. The scheme is
/// case-insensitive (RFC 7235 §2.1, RFC 6750 §2.1: `bearer`, `BEARER`);
/// one or more spaces separate it from the token.
fn bearer_credentials(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    Some(rest.trim_start_matches(' '))
}

/// Whether `headers` carry the bearer token (constant time).
fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_credentials)
    else {
        return false;
    };
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(token.as_bytes());
    !token.is_empty() && bool::from(a.ct_eq(&b))
}

async fn auth(State(a): State<Api>, req: Request, next: Next) -> Response {
    if authorized(req.headers(), &a.token) {
        next.run(req).await
    } else {
        let mut r = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send the hub's API token as Authorization: Bearer TOKEN",
        )
        .into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        r
    }
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such route (see /api/openapi.json)",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method (see /api/openapi.json)",
    )
}

/// The API's router.
pub fn router(api: Api) -> Router {
    Router::new()
        .merge(authenticated().route_layer(axum::middleware::from_fn_with_state(api.clone(), auth)))
        .route("/api/health", get(health))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            MAX_IN_FLIGHT,
        ))
        .with_state(api)
}

/// Serves the API on `listen` (the shell passes `127.0.0.1:PORT` by
/// default) until the process stops; first resumes, in the background,
/// any rollout a previous run left running.
pub async fn serve(listen: SocketAddr, api: Api) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    // Rollouts a previous run left mid-way go on, in the background.
    let hub = api.hub.clone();
    tokio::task::spawn_blocking(move || {
        let _ = hub.resume_rollouts();
    });
    axum::serve(listener, router(api)).await
}

/// Calls [`Hub::tick`] every `every` on a blocking thread, for `serve`'s
/// shell (errors become events on the next tick; they do not stop it).
pub fn spawn_ticker(hub: Arc<Hub>, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut t = tokio::time::interval(every);
        loop {
            t.tick().await;
            let h = hub.clone();
            let _ = tokio::task::spawn_blocking(move || h.tick()).await;
        }
    })
}
