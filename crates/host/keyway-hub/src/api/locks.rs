//! The `/locks` routes: a lock's record, pairing, refresh, updates,
//! consent, install, auto-install, progress and audit logs.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::actions;

use crate::model::{ConsentSource, Decision, LockId, NewLock};

use super::extract::{Body, PathArg};
use super::{Api, ApiResult, ok, with_status};

/// `POST /api/locks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockIn {
    name: String,
    address: String,
    class: String,
}

/// `POST /api/locks/{id}/pair`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairIn {
    setup_code: String,
}

/// `POST /api/locks/{id}/consents`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentIn {
    release: String,
    decision: Decision,
}

/// `PUT /api/locks/{id}/auto-install`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoIn {
    enabled: bool,
}

pub(super) async fn locks_list(State(a): State<Api>) -> ApiResult {
    ok(json!({"locks": a.run(move |hub| hub.locks()).await?}))
}

pub(super) async fn locks_add(State(a): State<Api>, Body(l): Body<LockIn>) -> ApiResult {
    let new = NewLock {
        name: l.name,
        address: l.address,
        class: l.class,
    };
    with_status(
        StatusCode::CREATED,
        a.run(move |hub| hub.add_lock(&new)).await?,
    )
}

pub(super) async fn lock_one(State(a): State<Api>, PathArg(id): PathArg<LockId>) -> ApiResult {
    ok(a.run(move |hub| hub.lock(id)).await?)
}

pub(super) async fn lock_remove(State(a): State<Api>, PathArg(id): PathArg<LockId>) -> ApiResult {
    a.run(move |hub| hub.remove_lock(id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn lock_pair(
    State(a): State<Api>,
    PathArg(id): PathArg<LockId>,
    Body(p): Body<PairIn>,
) -> ApiResult {
    ok(a.run(move |hub| hub.pair(id, &p.setup_code)).await?)
}

pub(super) async fn lock_refresh(State(a): State<Api>, PathArg(id): PathArg<LockId>) -> ApiResult {
    ok(a.run(move |hub| hub.refresh(id)).await?)
}

pub(super) async fn lock_updates(State(a): State<Api>, PathArg(id): PathArg<LockId>) -> ApiResult {
    ok(json!({"updates": actions::updates(a.hub.clone(), id).await?}))
}

pub(super) async fn lock_consents(State(a): State<Api>, PathArg(id): PathArg<LockId>) -> ApiResult {
    ok(
        json!({"consents": a.run(move |hub| { hub.lock(id)?; Ok(hub.store().consents(id)?) }).await?}),
    )
}

pub(super) async fn lock_consent(
    State(a): State<Api>,
    PathArg(id): PathArg<LockId>,
    Body(c): Body<ConsentIn>,
) -> ApiResult {
    let (consent, started) = actions::consent(
        a.hub.clone(),
        id,
        &c.release,
        c.decision,
        ConsentSource::Owner,
    )
    .await?;
    if started {
        with_status(
            StatusCode::ACCEPTED,
            json!({"consent": consent, "install": "started"}),
        )
    } else {
        ok(json!({"consent": consent, "install": "none"}))
    }
}

/// `POST /api/locks/{id}/install`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallIn {
    release: String,
}

pub(super) async fn lock_install(
    State(a): State<Api>,
    PathArg(id): PathArg<LockId>,
    Body(i): Body<InstallIn>,
) -> ApiResult {
    actions::install(a.hub.clone(), id, &i.release).await?;
    with_status(StatusCode::ACCEPTED, json!({"install": "started"}))
}

pub(super) async fn lock_auto(
    State(a): State<Api>,
    PathArg(id): PathArg<LockId>,
    Body(b): Body<AutoIn>,
) -> ApiResult {
    ok(a.run(move |hub| hub.set_auto_install(id, b.enabled))
        .await?)
}

pub(super) async fn lock_progress(State(a): State<Api>, PathArg(id): PathArg<LockId>) -> ApiResult {
    ok(json!({"progress": a.run(move |hub| { hub.lock(id)?; Ok(hub.progress_of(id)) }).await?}))
}

pub(super) async fn lock_logs(State(a): State<Api>, PathArg(id): PathArg<LockId>) -> ApiResult {
    let logs = a.run(move |hub| hub.logs(id)).await?;
    let list: Vec<serde_json::Value> = logs
        .iter()
        .enumerate()
        .map(|(n, l)| {
            json!({"index": n, "fetched_at": l.fetched_at, "first_seq": l.first_seq,
                   "last_seq": l.last_seq, "bytes": l.bytes.len()})
        })
        .collect();
    ok(json!({"logs": list}))
}

pub(super) async fn lock_log_download(
    State(a): State<Api>,
    PathArg((id, n)): PathArg<(LockId, usize)>,
) -> ApiResult {
    actions::log_download(a.hub.clone(), id, n).await
}

pub(super) async fn lock_log_fetch(
    State(a): State<Api>,
    PathArg(id): PathArg<LockId>,
) -> ApiResult {
    ok(json!({"log": a.run(move |hub| hub.fetch_log(id)).await?}))
}
