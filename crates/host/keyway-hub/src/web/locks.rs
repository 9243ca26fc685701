//! The locks list and a lock's page, with its update state, audit-log
//! health and live progress.

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::extract::{Path, State};

use super::html::{self, csrf_field, esc};
use crate::api::actions;
use crate::engine::{Phase, Progress};
use crate::model::{Decision, LockRecord, LogHealth, Postponement, UpdateState};

use super::{SessionExt, Web, WebResult, frame, lock_id};

pub(super) fn update_state(u: &UpdateState) -> String {
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

pub(super) fn postponement(p: &Postponement) -> String {
    match p {
        Postponement::BoltLocked => {
            "the bolt is locked: it installs once the bolt is withdrawn".into()
        }
        Postponement::BatteryLow { have_mwh, need_mwh } => format!(
            "the battery is low ({have_mwh} mWh, the update needs {need_mwh} mWh): it installs once charged"
        ),
    }
}

pub(super) fn log_health(l: &LogHealth) -> String {
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

pub(super) fn phase(p: Phase) -> &'static str {
    match p {
        Phase::Connecting => "connecting",
        Phase::Uploading => "uploading",
        Phase::Installing => "installing",
        Phase::Postponed => "postponed",
        Phase::Done => "done",
        Phase::Failed => "failed",
    }
}

pub(super) fn progress_running(p: &Progress) -> bool {
    matches!(
        p.phase,
        Phase::Connecting | Phase::Uploading | Phase::Installing
    )
}

pub(super) fn progress_html(p: &Progress) -> String {
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

pub(super) async fn locks_page(State(w): State<Web>, axum::Extension(s): SessionExt) -> WebResult {
    let (locks, models, now, offers) = w
        .api
        .run(move |hub| {
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
                        door(sn.door),
                        bolt(sn.bolt),
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

pub(super) async fn lock_page(
    State(w): State<Web>,
    axum::Extension(s): SessionExt,
    Path(id): Path<String>,
) -> WebResult {
    let id = lock_id(&id)?;
    let (lock, logs, now) = w
        .api
        .run(move |hub| Ok((hub.lock(id)?, hub.logs(id)?, hub.now())))
        .await?;
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
            b.push_str(&html::cve_list(&o.cves));
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

pub(super) fn lock_summary(b: &mut String, l: &LockRecord, now: i64) {
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
            door(sn.door),
            bolt(sn.bolt),
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

/// The door sensor in a word.
fn door(d: crate::model::Door) -> &'static str {
    match d {
        crate::model::Door::Open => "open",
        crate::model::Door::Closed => "closed",
    }
}

/// The bolt in a word.
fn bolt(b: crate::model::Bolt) -> &'static str {
    match b {
        crate::model::Bolt::Locked => "locked",
        crate::model::Bolt::Unlocked => "unlocked",
    }
}
