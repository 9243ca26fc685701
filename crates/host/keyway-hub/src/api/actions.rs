//! The actions both faces take: the JSON API's handlers and the web UI
//! ([`crate::web`]) call these, so neither decides anything the other
//! does not (the same `Hub` calls, the same checks, the same error codes).

use std::path::PathBuf;
use std::sync::Arc;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{Api, ApiError, SourceError, blocking};
use crate::engine::decide::Offer;
use crate::engine::{Hub, HubError, IngestReport};
use crate::model::{Consent, ConsentSource, Decision, LockId};

/// One update offered to a lock, with the owner's decision on it so far.
#[derive(Debug, Clone, Serialize)]
pub struct UpdateView {
    /// The offer.
    #[serde(flatten)]
    pub offer: Offer,
    /// The owner's latest decision on it (`None`: not asked yet).
    pub decision: Option<Decision>,
}

/// The updates offered to lock `id`, each with its decision.
pub async fn updates(hub: Arc<Hub>, id: LockId) -> Result<Vec<UpdateView>, ApiError> {
    let (updates, consents) =
        blocking(move || Ok((hub.updates(id)?, hub.store().consents(id)?))).await?;
    Ok(updates
        .into_iter()
        .map(|offer| UpdateView {
            decision: crate::engine::decide::decision(&consents, &offer.release),
            offer,
        })
        .collect())
}

/// Records the owner's decision on `release` (its digest in hex, as the
/// request names it: `400 bad_digest` when it is not one); an accepted one
/// starts the push in the background (its progress shows live). Returns the
/// consent and whether an install started.
pub async fn consent(
    hub: Arc<Hub>,
    id: LockId,
    release: &str,
    decision: Decision,
    source: ConsentSource,
) -> Result<(Consent, bool), ApiError> {
    let release = super::digest(release)?;
    let h = hub.clone();
    let consent = blocking(move || h.consent(id, release, decision, source)).await?;
    if decision == Decision::Accept {
        // Durable above; the push runs in the background.
        tokio::task::spawn_blocking(move || {
            let _ = hub.install(id, release);
        });
        Ok((consent, true))
    } else {
        Ok((consent, false))
    }
}

/// Pushes an accepted update (`release`, its digest in hex as in
/// [`consent`]) again, in the background: checked here so the caller hears
/// `bad_digest`, `unknown_lock`, `unknown_release` or `consent_required`
/// at once (`install` checks again).
pub async fn install(hub: Arc<Hub>, id: LockId, release: &str) -> Result<(), ApiError> {
    let release = super::digest(release)?;
    let h = hub.clone();
    blocking(move || {
        h.lock(id)?;
        h.store()
            .release(&release)?
            .ok_or(HubError::NoRelease(release))?;
        match crate::engine::decide::decision(&h.store().consents(id)?, &release) {
            Some(Decision::Accept) => Ok(()),
            _ => Err(HubError::NoConsent { lock: id, release }),
        }
    })
    .await?;
    tokio::task::spawn_blocking(move || {
        let _ = hub.install(id, release);
    });
    Ok(())
}

/// What an import did: the hub's verdict per envelope, and the targets
/// the bundle's TUF metadata itself refused.
#[derive(Debug, Clone, Serialize)]
pub struct ImportOut {
    /// Imported, already held, refused by the hub (with typed reasons).
    #[serde(flatten)]
    pub report: IngestReport,
    /// Refused by TUF verification: `{target, message}`.
    pub refused_by_tuf: Vec<serde_json::Value>,
}

/// Reads the offline bundle at `path` through the shell's bundle reader
/// and ingests what its TUF metadata vouches for.
pub async fn import(api: &Api, path: String) -> Result<ImportOut, ApiError> {
    let Some(src) = api.releases_in.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "imports_unavailable",
            "this hub has no bundle reader configured",
        ));
    };
    let path = PathBuf::from(path);
    let read = match tokio::task::spawn_blocking(move || src.read_bundle(&path)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            let status = match e {
                SourceError::NotFound(_) => StatusCode::NOT_FOUND,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            return Err(ApiError::new(status, e.code(), e.to_string()));
        }
        Err(e) => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("the import task failed: {e}"),
            ));
        }
    };
    let hub = api.hub.clone();
    let incoming = read.incoming;
    let report = blocking(move || hub.ingest(incoming)).await?;
    Ok(ImportOut {
        report,
        refused_by_tuf: read
            .refused
            .into_iter()
            .map(|(target, message)| serde_json::json!({"target": target, "message": message}))
            .collect(),
    })
}

/// Lock `id`'s kept audit-log export number `n`, as a file download
/// (`lock-ID-log-FIRST-LAST.bin`).
pub async fn log_download(hub: Arc<Hub>, id: LockId, n: usize) -> Result<Response, ApiError> {
    let logs = blocking(move || hub.logs(id)).await?;
    let Some(l) = logs.into_iter().nth(n) else {
        return Err(ApiError::new(
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
