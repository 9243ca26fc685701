//! The lock forms' POST handlers: add, pair, refresh, consent, install,
//! auto-install, log fetch and download, remove.

use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use crate::api::actions;
use crate::engine::{Hub, HubError};
use crate::model::{ConsentSource, Decision, LockId, NewLock};

use super::{Web, WebError, WebResult, bad, digest, lock_id, see};

/// Runs `op` on the hub (off the async runtime) for the lock whose id is
/// in the path; the lock's id once it is done.
async fn on_lock<T: Send + 'static>(
    w: &Web,
    id: &str,
    op: impl FnOnce(&Hub, LockId) -> Result<T, HubError> + Send + 'static,
) -> Result<LockId, WebError> {
    let id = lock_id(id)?;
    w.api.run(move |hub| op(hub, id)).await?;
    Ok(id)
}

#[derive(Deserialize)]
pub(super) struct LockIn {
    pub(super) name: String,
    pub(super) address: String,
    pub(super) class: String,
}

pub(super) async fn lock_add(State(w): State<Web>, Form(f): Form<LockIn>) -> WebResult {
    let new = NewLock {
        name: f.name,
        address: f.address,
        class: f.class,
    };
    let l = w.api.run(move |hub| hub.add_lock(&new)).await?;
    see(&format!("/locks/{}", l.id))
}

#[derive(Deserialize)]
pub(super) struct PairIn {
    pub(super) setup_code: String,
}

pub(super) async fn lock_pair(
    State(w): State<Web>,
    Path(id): Path<String>,
    Form(f): Form<PairIn>,
) -> WebResult {
    let id = on_lock(&w, &id, move |hub, id| {
        hub.pair(id, f.setup_code.trim())?;
        // Read its status at once so the page shows it.
        hub.refresh(id)
    })
    .await?;
    see(&format!("/locks/{id}"))
}

pub(super) async fn lock_refresh(State(w): State<Web>, Path(id): Path<String>) -> WebResult {
    let id = on_lock(&w, &id, |hub, id| hub.refresh(id)).await?;
    see(&format!("/locks/{id}"))
}

#[derive(Deserialize)]
pub(super) struct ConsentIn {
    pub(super) release: String,
    pub(super) decision: Decision,
}

pub(super) async fn lock_consent(
    State(w): State<Web>,
    Path(id): Path<String>,
    Form(f): Form<ConsentIn>,
) -> WebResult {
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
pub(super) struct InstallIn {
    pub(super) release: String,
}

pub(super) async fn lock_install(
    State(w): State<Web>,
    Path(id): Path<String>,
    Form(f): Form<InstallIn>,
) -> WebResult {
    let id = lock_id(&id)?;
    let release = digest(&f.release)?;
    actions::install(w.api.hub.clone(), id, release).await?;
    see(&format!("/locks/{id}"))
}

#[derive(Deserialize)]
pub(super) struct AutoIn {
    pub(super) enabled: bool,
}

pub(super) async fn lock_auto(
    State(w): State<Web>,
    Path(id): Path<String>,
    Form(f): Form<AutoIn>,
) -> WebResult {
    let id = on_lock(&w, &id, move |hub, id| hub.set_auto_install(id, f.enabled)).await?;
    see(&format!("/locks/{id}"))
}

pub(super) async fn lock_log_fetch(State(w): State<Web>, Path(id): Path<String>) -> WebResult {
    let id = on_lock(&w, &id, |hub, id| hub.fetch_log(id)).await?;
    see(&format!("/audit#lock-{id}"))
}

pub(super) async fn lock_remove(State(w): State<Web>, Path(id): Path<String>) -> WebResult {
    on_lock(&w, &id, |hub, id| hub.remove_lock(id)).await?;
    see("/")
}

pub(super) async fn lock_log_download(
    State(w): State<Web>,
    Path((id, n)): Path<(String, String)>,
) -> WebResult {
    let id = lock_id(&id)?;
    let n: usize = n.parse().map_err(|_| {
        bad(
            StatusCode::BAD_REQUEST,
            "bad_path",
            "a log index is an integer",
        )
    })?;
    Ok(actions::log_download(w.api.hub.clone(), id, n).await?)
}
