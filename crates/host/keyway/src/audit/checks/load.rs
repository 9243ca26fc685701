//! Checks 6 and 7: unlocks and the tamper sensor during an update, with
//! the unlock latencies.

use super::*;

impl Session<'_> {
    pub(super) fn under_load(&mut self) -> Result<(Check, Check)> {
        let (Some(ctl), Some(r)) = (self.control_addr, self.next_release(None)?) else {
            let why = if self.control_addr.is_none() {
                "the lock has no control interface: its keypad and sensors cannot be driven"
            } else {
                "no release left to upload"
            };
            return Ok((
                check(6, Status::Skip, why, vec![]),
                check(7, Status::Skip, why, vec![]),
            ));
        };
        self.say(&format!("checks 6 and 7: {} under load", r.label));
        // 1 upload, 2 install, 0 stop.
        let phase = Arc::new(AtomicU8::new(1));
        let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
        let owner = if self.keyway_group {
            self.owner.clone()
        } else {
            None
        };
        let sampler = {
            let (phase, samples, pin, addr) = (
                Arc::clone(&phase),
                Arc::clone(&samples),
                self.pin.clone(),
                self.addr,
            );
            std::thread::spawn(move || {
                sample_unlocks(addr, ctl, &pin, owner.as_ref(), &phase, &samples)
            })
        };
        // Tamper half way through the upload.
        let mut ev7 = Vec::new();
        let half = r.envelope.len() as u64 / 2;
        let mut tamper_ev = Vec::new();
        let mut tamper_seen = false;
        let u = {
            let mut control = Control::new(ctl);
            let mut flag = false;
            let mut f = |off: u64| {
                if !flag && off >= half {
                    flag = true;
                    let on = control.cmd(&json!({"cmd": "tamper", "state": "on"}));
                    match on {
                        Ok(v) => {
                            tamper_seen = v["lock"]["tamper"] == json!(true);
                            tamper_ev.push(format!("at byte {off} of the upload: tamper sensor on; the lock answered tamper {}", v["lock"]["tamper"]));
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
        let _ = self.ctl(json!({"cmd": "tamper", "state": "off"}));
        ev7.push(format!("upload: {}", u.describe(r.envelope.len())));
        let mut ev6 = vec![format!(
            "uploaded {} at one chunk every 15 ms: {}",
            r.label,
            u.describe(r.envelope.len())
        )];
        phase.store(2, Ordering::SeqCst);
        let installed = matches!(u, Upload::Done { .. }) && self.install(&r, &mut ev6)?;
        // A few more samples after the install settled.
        std::thread::sleep(Duration::from_millis(100));
        phase.store(0, Ordering::SeqCst);
        let _ = sampler.join();
        let samples = std::mem::take(&mut *samples.lock().unwrap_or_else(PoisonError::into_inner));
        if tamper_seen {
            self.expect.push(Expect::Tamper);
        }
        let c7 = if tamper_seen && status_tamper != Some(false) {
            check(
                7,
                Status::Pass,
                "tamper detected and reported during the update",
                ev7,
            )
        } else {
            check(
                7,
                Status::Fail,
                "tamper was not detected during the update",
                ev7,
            )
        };
        let mut c6 = latency_check(&samples, ev6);
        if !installed {
            c6.evidence
                .push("(the update itself did not install; see check 2)".into());
        }
        Ok((c6, c7))
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
    addr: SocketAddr,
    ctl: SocketAddr,
    pin: &str,
    owner: Option<&SigningKey>,
    phase: &AtomicU8,
    out: &Mutex<Vec<Sample>>,
) {
    let mut control = Control::new(ctl);
    let Ok(mut smp) = Smp::connect(addr) else {
        return;
    };
    if smp.set_owner(owner.cloned()).is_err() {
        return;
    }
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
                && smp.owner_call(|c| c.unlock()).is_ok_and(|a| {
                    matches!(a, Answer::Ok(b) if smp::get_text(&b, "bolt").ok().flatten() == Some("unlocked"))
                })
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

fn latency_check(samples: &[Sample], mut ev: Vec<String>) -> Check {
    let mut figures = Vec::new();
    let mut failed = 0;
    for kind in ["keypad", "owner"] {
        for (phase, pname) in [(1u8, "upload"), (2, "install")] {
            let s: Vec<&Sample> = samples
                .iter()
                .filter(|x| x.kind == kind && x.phase == phase)
                .collect();
            if s.is_empty() {
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
    let during_upload = samples.iter().filter(|x| x.phase == 1).count();
    let mut c = if samples.is_empty() || during_upload == 0 {
        check(
            6,
            Status::Fail,
            "no unlock could be made during the upload",
            ev,
        )
    } else if failed > 0 {
        check(
            6,
            Status::Fail,
            format!(
                "{failed} of {} unlocks failed during the update",
                samples.len()
            ),
            ev,
        )
    } else {
        check(
            6,
            Status::Pass,
            format!(
                "all {} keypad and owner unlocks worked during upload and install",
                samples.len()
            ),
            ev,
        )
    };
    c.figures = figures;
    c
}
