//! Checks 6 and 7: unlocks and the tamper sensor during an update, with
//! the unlock latencies.

use super::*;

impl Session<'_> {
    pub(super) fn under_load(&mut self) -> Result<(Check, Check)> {
        let (Some(ctl), Some(r)) = (self.control_addr.clone(), self.next_release(None)?) else {
            let why = if self.control_addr.is_none() {
                "the lock has no control interface: its keypad and sensors cannot be driven"
            } else {
                "no release left to upload"
            };
            return Ok((skip(6, why, vec![]), skip(7, why, vec![])));
        };
        self.say(&format!("checks 6 and 7: {} under load", r.label));
        // 1 upload, 2 install, 0 stop.
        let phase = Arc::new(AtomicU8::new(1));
        // However this check ends (an error returns early), the sampler
        // stops: it must not go on unlocking the lock for the rest of
        // the run.
        let _stop = StopSampler(Arc::clone(&phase));
        let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
        let owner = if self.keyway_group {
            self.owner.clone()
        } else {
            None
        };
        let owner_sampled = owner.is_some() && !self.serial;
        let sampler = {
            let (phase, samples, pin, addr, ctl, paired) = (
                Arc::clone(&phase),
                Arc::clone(&samples),
                self.pin.clone(),
                // One serial line carries one request at a time, and the
                // upload holds it: the sampler opens no second client.
                (!self.serial).then(|| self.addr.clone()),
                self.control
                    .as_ref()
                    .map_or_else(|| Control::new(ctl.clone()), Control::share),
                self.smp.paired(),
            );
            std::thread::spawn(move || {
                sample_unlocks(
                    addr.as_deref(),
                    ctl,
                    &pin,
                    (owner.as_ref(), paired),
                    &phase,
                    &samples,
                )
            })
        };
        // Tamper half way through the upload. The sensor must be quiet
        // before, or a tamper latched earlier would pass for detection.
        let mut ev7 = Vec::new();
        let len = r.envelope.len() as u64;
        let half = len / 2;
        let quiet_before = match self.ctl(json!({"cmd": "status"})) {
            Ok(v) => {
                ev7.push(format!("before the update: tamper {}", v["lock"]["tamper"]));
                v["lock"]["tamper"] == json!(false)
            }
            Err(e) => {
                ev7.push(format!("before the update: status failed: {e:#}"));
                false
            }
        };
        let mut tamper_ev = Vec::new();
        let mut tamper_seen = false;
        let u = {
            let mut control = self
                .control
                .as_ref()
                .map_or_else(|| Control::new(ctl.clone()), Control::share);
            let mut flag = false;
            let mut f = |off: u64| {
                // Only while bytes remain: the update is still under way.
                if !flag && off >= half && off < len {
                    flag = true;
                    let on = control.cmd(&json!({"cmd": "tamper", "state": "on"}));
                    match on {
                        Ok(v) => {
                            tamper_seen = v["lock"]["tamper"] == json!(true);
                            tamper_ev.push(format!("at byte {off} of {len} of the upload: tamper sensor on; the lock answered tamper {}", v["lock"]["tamper"]));
                        }
                        Err(e) => tamper_ev.push(format!("tamper on failed: {e:#}")),
                    }
                }
                // On a busy machine the sampler may start late: the upload
                // waits (at most a second) until it has unlocked a few
                // times, so the figures are taken during the upload.
                if off >= half {
                    for _ in 0..50 {
                        let n = samples
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .iter()
                            .filter(|x| x.phase == 1)
                            .count();
                        if n >= 4 {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                true
            };
            self.upload(&r, Duration::from_millis(15), &mut f)?
        };
        if tamper_ev.is_empty() {
            tamper_ev.push("the tamper sensor was never triggered during the upload".into());
        }
        ev7.extend(tamper_ev);
        let status_tamper = if self.keyway_group {
            self.smp
                .status()
                .ok()
                .and_then(|b| smp::get_bool(&b, "tamper").ok().flatten())
        } else {
            None
        };
        if let Some(t) = status_tamper {
            ev7.push(format!("SMP status during the update: tamper {t}"));
        }
        // The lock's own log must hold the detection, recorded during the
        // update (since the export before it).
        let logged = self
            .events_since_last_export("tamper during upload")
            .iter()
            .any(|e| matches!(e, Event::TamperDetected { .. }));
        ev7.push(format!(
            "its log since the update began: tamper detected {logged}"
        ));
        let _ = self.ctl(json!({"cmd": "tamper", "state": "off"}));
        ev7.push(format!("upload: {}", u.describe(r.envelope.len())));
        let mut ev6 = vec![format!(
            "uploaded {} at one chunk every 15 ms: {}",
            r.label,
            u.describe(r.envelope.len())
        )];
        phase.store(2, Ordering::SeqCst);
        let installed = matches!(u, UploadOutcome::Done { .. }) && self.install(&r, &mut ev6)?;
        // A few more samples after the install settled.
        std::thread::sleep(Duration::from_millis(100));
        phase.store(0, Ordering::SeqCst);
        let _ = sampler.join();
        let samples = std::mem::take(&mut *samples.lock().unwrap_or_else(PoisonError::into_inner));
        if tamper_seen {
            self.expect.push(Expect::Tamper);
        }
        // A lock with the Keyway group must report the tamper in its
        // status; a lock without it has only its log to show.
        let reported = !self.keyway_group || status_tamper == Some(true);
        let c7 = if !quiet_before {
            fail(
                7,
                "the tamper sensor was not quiet before the update, so its detection cannot be shown",
                ev7,
            )
        } else if tamper_seen && reported && logged {
            pass(
                7,
                "tamper triggered mid-upload: detected, reported over SMP and logged",
                ev7,
            )
        } else {
            let mut missing = Vec::new();
            if !tamper_seen {
                missing.push("the lock did not register the sensor");
            }
            if !reported {
                missing.push("its SMP status did not report it");
            }
            if !logged {
                missing.push("its log has no tamper record");
            }
            fail(
                7,
                format!(
                    "tamper during the update was not detected: {}",
                    missing.join(", ")
                ),
                ev7,
            )
        };
        if self.serial && self.keyway_group && self.owner.is_some() {
            ev6.push("owner unlocks not sampled: one serial line carries one request at a time, and the upload holds it (keypad unlocks only)".into());
        }
        let kinds: &[&str] = if owner_sampled {
            &["keypad", "owner"]
        } else {
            &["keypad"]
        };
        let mut c6 = latency_check(&samples, kinds, ev6);
        if !installed {
            c6.evidence
                .push("(the update itself did not install; see check 2)".into());
        }
        Ok((c6, c7))
    }
}

/// Sets the sampler's phase to 0 (stop) when dropped.
struct StopSampler(Arc<AtomicU8>);

impl Drop for StopSampler {
    fn drop(&mut self) {
        self.0.store(0, Ordering::SeqCst);
    }
}

/// Percentile of sorted samples.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One unlock and how long it took.
#[derive(Debug, Clone)]
struct Sample {
    /// `keypad` or `owner`.
    kind: &'static str,
    /// 1 upload, 2 install.
    phase: u8,
    ms: f64,
    ok: bool,
}

/// Unlocks sampled in each phase (upload, install).
const PER_PHASE: usize = 12;

/// Alternates keypad and owner unlocks (each followed by a lock) while
/// `phase` is not 0.
fn sample_unlocks(
    addr: Option<&str>,
    ctl: Control,
    pin: &str,
    (owner, paired): (Option<&SigningKey>, Option<[u8; 32]>),
    phase: &AtomicU8,
    out: &Mutex<Vec<Sample>>,
) {
    let mut control = ctl;
    // No SMP client (a serial line): keypad unlocks only.
    let mut smp = match addr.map(Smp::connect) {
        Some(Ok(s)) => Some(s),
        Some(Err(_)) => return,
        None => None,
    };
    if let Some(smp) = smp.as_mut()
        && (smp.set_owner(owner.cloned()).is_err() || smp.set_paired(paired).is_err())
    {
        return;
    }
    let owner = if smp.is_some() { owner } else { None };
    let mut i = 0u32;
    loop {
        let p = phase.load(Ordering::SeqCst);
        if p == 0 {
            return;
        }
        // At most PER_PHASE unlocks in each phase: each unlock and lock is
        // an audit record, and the log's ring must not rotate the update's
        // records out before the next export.
        let taken = out
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|x| x.phase == p)
            .count();
        if taken >= PER_PHASE {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        i += 1;
        let (kind, t0) = if i % 2 == 1 || owner.is_none() {
            ("keypad", Instant::now())
        } else {
            ("owner", Instant::now())
        };
        let ok = if kind == "keypad" {
            control
                .cmd(&json!({"cmd": "keypad", "pin": pin}))
                .is_ok_and(|v| v["result"] == "unlocked")
        } else {
            // The nonce is part of the unlock's round trip.
            owner.is_some()
                && smp.as_mut().is_some_and(|l| l.owner_call(|c| c.unlock()).is_ok_and(|a| {
                    matches!(a, Answer::Ok(b) if smp::get_text(&b, "bolt").ok().flatten() == Some("unlocked"))
                }))
        };
        let dt = ms(t0.elapsed());
        out.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Sample {
                kind,
                phase: p,
                ms: dt,
                ok,
            });
        let _ = control.cmd(&json!({"cmd": "lock"}));
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Check 6 from the samples: every unlock of each of `kinds` worked, and
/// each kind was sampled during the upload (no samples is no evidence).
fn latency_check(samples: &[Sample], kinds: &[&str], mut ev: Vec<String>) -> Check {
    let mut figures = Vec::new();
    let mut failed = 0;
    let mut unsampled = Vec::new();
    for &kind in kinds {
        for (phase, pname) in [(1u8, "upload"), (2, "install")] {
            let s: Vec<&Sample> = samples
                .iter()
                .filter(|x| x.kind == kind && x.phase == phase)
                .collect();
            if s.is_empty() {
                ev.push(format!("{kind} unlocks during {pname}: none made"));
                if phase == 1 {
                    unsampled.push(kind);
                }
                continue;
            }
            let bad = s.iter().filter(|x| !x.ok).count();
            failed += bad;
            let mut v: Vec<f64> = s.iter().map(|x| x.ms).collect();
            v.sort_by(f64::total_cmp);
            let (p50, p99, max) = (percentile(&v, 50.0), percentile(&v, 99.0), v[v.len() - 1]);
            ev.push(format!(
                "{kind} unlocks during {pname}: {} of {} worked; p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms",
                s.len() - bad,
                s.len()
            ));
            figures.push((format!("{kind}_{pname}_p50_ms"), p50));
            figures.push((format!("{kind}_{pname}_p99_ms"), p99));
            figures.push((format!("{kind}_{pname}_max_ms"), max));
            figures.push((format!("{kind}_{pname}_n"), s.len() as f64));
        }
    }
    let count = |p: u8| samples.iter().filter(|x| x.phase == p).count();
    let mut c = if !unsampled.is_empty() {
        fail(
            6,
            format!(
                "no {} unlock could be made during the upload",
                unsampled.join(" or ")
            ),
            ev,
        )
    } else if failed > 0 {
        fail(
            6,
            format!(
                "{failed} of {} unlocks failed during the update",
                samples.len()
            ),
            ev,
        )
    } else {
        pass(
            6,
            format!(
                "all {} {} unlocks worked: {} during the upload, {} during the install",
                samples.len(),
                kinds.join(" and "),
                count(1),
                count(2)
            ),
            ev,
        )
    };
    c.figures = figures;
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(kind: &'static str, phase: u8, ok: bool) -> Sample {
        Sample {
            kind,
            phase,
            ms: 1.0,
            ok,
        }
    }

    /// A lock whose owner unlock never got a turn during the upload has
    /// shown nothing about it: no samples is a FAIL, not a pass.
    #[test]
    fn no_owner_unlock_during_the_upload_fails_check_6() {
        let s = [sample("keypad", 1, true), sample("keypad", 2, true)];
        let c = latency_check(&s, &["keypad", "owner"], vec![]);
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(c.summary.contains("no owner unlock"), "{}", c.summary);
        let c = latency_check(&[], &["keypad"], vec![]);
        assert_eq!(c.status, Status::Fail, "{c:?}");
    }

    #[test]
    fn a_failed_unlock_fails_check_6_and_all_working_passes() {
        let mut s = vec![sample("keypad", 1, true), sample("owner", 1, true)];
        let c = latency_check(&s, &["keypad", "owner"], vec![]);
        assert_eq!(c.status, Status::Pass, "{c:?}");
        assert!(
            c.summary
                .contains("2 during the upload, 0 during the install")
        );
        assert!(c.figures.iter().any(|(k, _)| k == "owner_upload_p99_ms"));
        s.push(sample("owner", 2, false));
        let c = latency_check(&s, &["keypad", "owner"], vec![]);
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(
            c.summary.starts_with("1 of 3 unlocks failed"),
            "{}",
            c.summary
        );
    }
}
