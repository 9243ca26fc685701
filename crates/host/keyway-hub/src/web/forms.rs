//! The lock forms' POST handlers: add, pair, refresh, consent, install,
//! auto-install, log fetch and download, remove.

use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::api::{ApiError, actions};
use crate::engine::{Hub, HubError};
use crate::model::{ConsentSource, Decision, LockId, NewLock};

use super::{Web, WebError, WebResult, bad, lock_id, see};

/// Runs `op` on the hub (off the async runtime) for lock `id`.
async fn run_on<T: Send + 'static>(
    w: &Web,
    id: LockId,
    op: impl FnOnce(&Hub, LockId) -> Result<T, HubError> + Send + 'static,
) -> Result<(), ApiError> {
    w.api.run(move |hub| op(hub, id)).await?;
    Ok(())
}

/// [`run_on`] the lock whose id is in the path; the lock's id once it is
/// done.
async fn on_lock<T: Send + 'static>(
    w: &Web,
    id: &str,
    op: impl FnOnce(&Hub, LockId) -> Result<T, HubError> + Send + 'static,
) -> Result<LockId, WebError> {
    let id = lock_id(id)?;
    run_on(w, id, op).await?;
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

/// A form posted to `/locks/{id}/…` with fields: what it does to that
/// lock. [`lock_form`] is the handler of each.
pub(super) trait LockForm: DeserializeOwned + Send + 'static {
    /// Applies the form to lock `id`.
    fn apply(self, w: &Web, id: LockId) -> impl Future<Output = Result<(), ApiError>> + Send;
}

/// Parses the lock's id from the path, applies the form `F` to it and
/// shows the lock's page: `post(lock_form::<PairIn>)`.
pub(super) async fn lock_form<F: LockForm>(
    State(w): State<Web>,
    Path(id): Path<String>,
    Form(f): Form<F>,
) -> WebResult {
    let id = lock_id(&id)?;
    f.apply(&w, id).await?;
    see(&format!("/locks/{id}"))
}

#[derive(Deserialize)]
pub(super) struct PairIn {
    pub(super) setup_code: String,
}

impl LockForm for PairIn {
    async fn apply(self, w: &Web, id: LockId) -> Result<(), ApiError> {
        run_on(w, id, move |hub, id| {
            hub.pair(id, self.setup_code.trim())?;
            // Read its status at once so the page shows it.
            hub.refresh(id)
        })
        .await
    }
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

impl LockForm for ConsentIn {
    async fn apply(self, w: &Web, id: LockId) -> Result<(), ApiError> {
        let hub = w.api.hub.clone();
        actions::consent(hub, id, &self.release, self.decision, ConsentSource::Owner).await?;
        Ok(())
    }
}

#[derive(Deserialize)]
pub(super) struct InstallIn {
    pub(super) release: String,
}

impl LockForm for InstallIn {
    async fn apply(self, w: &Web, id: LockId) -> Result<(), ApiError> {
        actions::install(w.api.hub.clone(), id, &self.release).await
    }
}

#[derive(Deserialize)]
pub(super) struct AutoIn {
    pub(super) enabled: bool,
}

impl LockForm for AutoIn {
    async fn apply(self, w: &Web, id: LockId) -> Result<(), ApiError> {
        run_on(w, id, move |hub, id| hub.set_auto_install(id, self.enabled)).await
    }
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
