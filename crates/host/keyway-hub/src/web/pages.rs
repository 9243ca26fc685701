//! The audit, import and release pages.

use std::fmt::Write as _;

use axum::extract::{Form, Path, State};
use serde::Deserialize;

use super::html::{self, csrf_field, esc};
use crate::api::actions;
use crate::model::{EventLevel, LockRecord};

use super::locks::log_health;
use super::{Sess, SessionExt, Web, WebResult, digest, frame};

pub(super) async fn audit_page(State(w): State<Web>, axum::Extension(s): SessionExt) -> WebResult {
    let (locks, events) = w
        .api
        .run(move |hub| {
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

pub(super) async fn import_page(State(w): State<Web>, axum::Extension(s): SessionExt) -> WebResult {
    let b = import_form(&s, "");
    frame(&w, "Import", &s, None, &b).await
}

pub(super) fn import_form(s: &Sess, path: &str) -> String {
    format!(
        "<h1>Import a bundle</h1><p>An offline bundle (from <code>keyway publish --bundle</code>, on a USB stick): the hub verifies its TUF metadata chain, then every envelope against its model's anchors, with no network.</p>\
         <form method=\"post\" action=\"/import\" class=\"card\">{}<label>Bundle directory <input name=\"path\" required maxlength=\"4096\" value=\"{}\" placeholder=\"/media/usb/keyway-bundle\"></label><button type=\"submit\">Import</button></form>",
        csrf_field(&s.csrf),
        esc(path)
    )
}

#[derive(Deserialize)]
pub(super) struct ImportIn {
    pub(super) path: String,
}

pub(super) async fn import(
    State(w): State<Web>,
    axum::Extension(s): SessionExt,
    Form(f): Form<ImportIn>,
) -> WebResult {
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
                html::list(
                    &mut b,
                    "<h3>Already held</h3>",
                    r.already_held.iter().map(|t| esc(t)),
                );
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

pub(super) async fn releases_page(
    State(w): State<Web>,
    axum::Extension(s): SessionExt,
) -> WebResult {
    let releases = w
        .api
        .run(move |hub| Ok(hub.store().releases(None)?))
        .await?;
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

pub(super) async fn release_page(
    State(w): State<Web>,
    axum::Extension(s): SessionExt,
    Path(d): Path<String>,
) -> WebResult {
    let d = digest(&d)?;
    let (r, locks) = w
        .api
        .run(move |hub| {
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
        b.push_str(&html::cve_list(&r.cves));
    }
    b.push_str("<h2>Release notes</h2>");
    b.push_str(&html::notes(&r.notes));
    if !locks.is_empty() {
        let items = locks.iter().map(|l| {
            format!(
                "<a href=\"/locks/{}\">{}</a>: {}",
                l.id,
                esc(&l.name),
                l.snapshot
                    .as_ref()
                    .map(|s| format!("runs {}", esc(&s.version)))
                    .unwrap_or_else(|| "no status yet".into())
            )
        });
        html::list(&mut b, "<h2>Locks of this model</h2>", items);
    }
    frame(&w, &format!("{} {}", r.class, r.version), &s, None, &b).await
}
