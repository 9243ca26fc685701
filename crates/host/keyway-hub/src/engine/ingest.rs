//! Releases in: the models' anchors, envelopes from the mirror (verified
//! by [`intake`] before they are stored), and the mirror's freshness.

use std::sync::Arc;

use crate::model::{Digest, EventLevel, Freshness, ModelAnchors, UnixSecs};

use super::decide::{self, FreshnessState, Known};
use super::intake;
use super::{
    FreshnessReport, Hub, HubError, Imported, Incoming, IngestReport, Refused, SyncError, SyncNow,
};

impl Hub {
    /// Gives the hub a way to sync its release source on request.
    pub fn set_sync(&self, sync: Arc<dyn SyncNow>) {
        if let Ok(mut s) = self.sync.lock() {
            *s = Some(sync);
        }
    }

    /// Syncs the release source now; `Ok(None)` when the shell gave the
    /// hub no way to (see [`Hub::set_sync`]).
    pub fn sync_now(&self) -> Result<Option<IngestReport>, SyncError> {
        let sync = self.sync.lock().ok().and_then(|s| s.clone());
        match sync {
            None => Ok(None),
            Some(s) => s.sync_now(self).map(Some),
        }
    }

    // ----- models and releases -------------------------------------------

    /// Adds or replaces a model's anchors (they must load).
    pub fn put_model(&self, model: &ModelAnchors) -> Result<(), HubError> {
        intake::anchors(model).map_err(HubError::BadModel)?;
        self.store.put_model(model)?;
        self.event(
            None,
            EventLevel::Info,
            "model_added",
            &format!("lock model {} ({})", model.class, model.vendor_domain),
        )
    }

    /// Verifies each envelope against its model's anchors and keeps the
    /// ones that verify; says what it refused and why.
    pub fn ingest(&self, targets: Vec<Incoming>) -> Result<IngestReport, HubError> {
        let models = self.store.models()?;
        // Key sets carried by this batch's envelopes, and (read only when an
        // envelope needs one) by the stored ones.
        let mut keysets = intake::KeySets::new();
        let mut stored: Option<intake::KeySets> = None;
        let mut report = IngestReport::default();
        for inc in targets {
            let now = self.now();
            let mut r = intake::verify(
                &inc.target,
                &inc.bytes,
                inc.origin.clone(),
                &models,
                &keysets,
                now,
            );
            if let Err(intake::IntakeRefusal::Verification { check, .. }) = &r
                && matches!(
                    check,
                    keyway_vendor::check::Check::Signatures | keyway_vendor::check::Check::KeySet
                )
            {
                if stored.is_none() {
                    stored = Some(self.keysets(&models)?);
                }
                let mut all = stored.clone().unwrap_or_default();
                for (class, ks) in &keysets {
                    if all.get(class).is_none_or(|k| k.version < ks.version) {
                        all.insert(class.clone(), ks.clone());
                    }
                }
                if let Ok(acc) =
                    intake::verify(&inc.target, &inc.bytes, inc.origin, &models, &all, now)
                {
                    r = Ok(acc);
                }
            }
            match r {
                Ok(acc) => {
                    let digest = acc.release.digest;
                    if let Some(ks) = acc.keyset
                        && keysets
                            .get(&acc.release.class)
                            .is_none_or(|k| k.version < ks.version)
                    {
                        keysets.insert(acc.release.class.clone(), ks);
                    }
                    if self.store.put_release(&acc.release)? {
                        self.images
                            .lock()
                            .map_err(|_| HubError::Invalid("poisoned".into()))?
                            .insert(digest, Some(acc.image));
                        self.event(
                            None,
                            EventLevel::Info,
                            "release_imported",
                            &format!(
                                "release {} of {} (sequence {}) from {}",
                                acc.release.version,
                                acc.release.class,
                                acc.release.sequence,
                                inc.target
                            ),
                        )?;
                        report.imported.push(Imported {
                            target: inc.target,
                            digest,
                            class: acc.release.class,
                            version: acc.release.version,
                            sequence: acc.release.sequence,
                        });
                    } else {
                        report.already_held.push(inc.target);
                    }
                }
                Err(reason) => {
                    let message = reason.to_string();
                    self.event(
                        None,
                        EventLevel::Warning,
                        "release_refused",
                        &format!("{}: {message}", inc.target),
                    )?;
                    report.refused.push(Refused {
                        target: inc.target,
                        reason,
                        message,
                    });
                }
            }
        }
        Ok(report)
    }

    /// The newest root-signed key set each model's stored envelopes carry
    /// (read from the stored envelopes: the store holds no other copy).
    pub(super) fn keysets(&self, models: &[ModelAnchors]) -> Result<intake::KeySets, HubError> {
        let mut out = intake::KeySets::new();
        for m in models {
            let Ok(anchors) = intake::anchors(m) else {
                continue;
            };
            for r in self.store.releases(Some(&m.class))? {
                let Some(full) = self.store.release(&r.digest)? else {
                    continue;
                };
                if let Some(ks) = intake::carried_keyset(&full.envelope, &anchors)
                    && out.get(&m.class).is_none_or(|k| k.version < ks.version)
                {
                    out.insert(m.class.clone(), ks);
                }
            }
        }
        Ok(out)
    }

    /// The image a stored release installs (cached; read from its envelope
    /// the first time).
    pub(super) fn image(&self, digest: &Digest) -> Result<Option<Digest>, HubError> {
        if let Some(i) = self.images.lock().ok().and_then(|m| m.get(digest).copied()) {
            return Ok(i);
        }
        let img = self
            .store
            .release(digest)?
            .and_then(|r| intake::image_of(&r.envelope));
        if let Ok(mut m) = self.images.lock() {
            m.insert(*digest, img);
        }
        Ok(img)
    }

    /// The releases of a class with their images, for the decisions.
    pub(super) fn known(&self, class: &str) -> Result<Vec<Known>, HubError> {
        let mut out = Vec::new();
        for release in self.store.releases(Some(class))? {
            if let Some(image) = self.image(&release.digest)? {
                out.push(Known { release, image });
            }
        }
        Ok(out)
    }

    // ----- freshness -----------------------------------------------------

    /// Records a TUF sync that verified a fresh timestamp.
    pub fn record_tuf_fresh(
        &self,
        url: &str,
        timestamp_version: u64,
        expires: UnixSecs,
    ) -> Result<(), HubError> {
        let f = Freshness {
            url: Some(url.replace('\0', "\u{FFFD}")),
            last_fresh_at: Some(self.now()),
            timestamp_version: Some(timestamp_version),
            timestamp_expires: Some(expires),
            last_error: None,
        };
        self.store.set_freshness(&f)?;
        self.check_freshness()?;
        Ok(())
    }

    /// Records a TUF sync that failed (the last fresh timestamp stands).
    /// NULs in the error's text (a server's words) become U+FFFD: the
    /// store keeps no NUL.
    pub fn record_tuf_error(&self, url: &str, error: &str) -> Result<(), HubError> {
        let error = &error.replace('\0', "\u{FFFD}");
        let mut f = self.store.freshness()?;
        f.url = Some(url.replace('\0', "\u{FFFD}"));
        f.last_error = Some(error.to_string());
        self.store.set_freshness(&f)?;
        self.event(None, EventLevel::Warning, "tuf_sync_failed", error)?;
        self.check_freshness()?;
        Ok(())
    }

    /// The hub's view of its repository's freshness.
    pub fn freshness(&self) -> Result<FreshnessReport, HubError> {
        let record = self.store.freshness()?;
        let status = decide::freshness(&record, self.now(), self.config.stale_after_secs);
        Ok(FreshnessReport {
            warning: status.is_warning(),
            record,
            status,
            stale_after_secs: self.config.stale_after_secs,
        })
    }

    /// Writes an event when freshness changes state (stale/expired warn).
    pub(super) fn check_freshness(&self) -> Result<FreshnessReport, HubError> {
        let r = self.freshness()?;
        let code = r.status.code();
        let changed = {
            let mut last = self
                .last_freshness
                .lock()
                .map_err(|_| HubError::Invalid("poisoned".into()))?;
            let changed = *last != Some(code);
            *last = Some(code);
            changed
        };
        if changed {
            match &r.status {
                FreshnessState::Stale { age_secs } => self.event(
                    None,
                    EventLevel::Warning,
                    "tuf_stale",
                    &format!(
                        "no fresh TUF timestamp for {age_secs} s: the internet is down, or someone withholds updates (a freeze attack); what the hub holds still installs"
                    ),
                )?,
                FreshnessState::Expired { expired_at } => self.event(
                    None,
                    EventLevel::Warning,
                    "tuf_expired",
                    &format!("the TUF timestamp expired at {expired_at}; what the hub holds still installs"),
                )?,
                FreshnessState::Fresh { .. } => {
                    self.event(None, EventLevel::Info, "tuf_fresh", "the TUF view is fresh")?
                }
                FreshnessState::Never => {}
            }
        }
        Ok(r)
    }
}
