//! The lab: a simulated lock (`keyway-lock`) run in this process, for
//! `keyway audit --lock-state DIR [--lock-profile P]`.
//!
//! The audit ([`crate::audit`]) tests any lock as a tester would, through
//! SMP on UDP and the control socket; it does not link the simulated
//! lock. This module is the demo side's bench: it reads what the lock's
//! provisioning says (its `lock.json`, floor, device key and PIN from the
//! state directory), powers the lock on with a control socket on
//! loopback ([`Lab::start`]), hands the audit a plain `udp:HOST:PORT`
//! target with that knowledge filled in ([`Lab::configure`]), and powers
//! it off after the run ([`Lab::stop`]).
//!
//! Why the seam is here, in the command line's dispatch, and not inside
//! `audit/`: the audit's code then has one way to reach a lock, the
//! same for a simulated lock and a real one, and cannot grow a shortcut
//! into the simulator's state; and `--lock-state` keeps its exact
//! behaviour (the namespace, the launch order, the output and exit
//! codes), because [`audit()`] runs the same steps as
//! `audit::cli::audit` ([`isolate`], [`options`], [`finish`]) with the
//! lock started in between. `tests/layering.rs` fails if `src/audit` or
//! `src/device` name `keyway_lock`, or if `src/audit` uses this module.
//!
//! [`isolate`]: crate::audit::cli::isolate
//! [`options`]: crate::audit::cli::options
//! [`finish`]: crate::audit::cli::finish

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow};
use keyway_vendor::keys::PublicKey;

use crate::audit::{self, Target, cli::AuditArgs, link::ControlAddr};

/// A simulated lock running in this process, and what its provisioning
/// says about it.
#[derive(Debug)]
pub struct Lab {
    running: keyway_lock::shell::Running,
    domain: String,
    class: String,
    pin: String,
    floor: u64,
    device_key: PathBuf,
    profile: Option<String>,
}

impl Lab {
    /// Powers on the lock provisioned in `state` (`keyway-lock
    /// provision`), as `profile` if given (`keyway-lock --profile`), with
    /// SMP and a control socket on loopback ports of its choosing.
    pub fn start(state: &Path, profile: Option<&str>) -> Result<Lab> {
        let dir = keyway_lock::state::StateDir::new(state);
        let id: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(state.join("lock.json"))
                .with_context(|| format!("{}: no provisioned lock", state.display()))?,
        )
        .context("lock.json is not JSON")?;
        let field = |k: &str| {
            id.get(k)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("lock.json: no \"{k}\""))
        };
        let (domain, class) = (field("vendor_domain")?, field("class")?);
        let floor = dir.load()?.state().floor.unwrap_or(0);
        let device_key = state.join("device.pub");
        PublicKey::load(&device_key).with_context(|| format!("{}/device.pub", state.display()))?;
        let mut opts = keyway_lock::shell::Options::new(state, "127.0.0.1:0".parse()?);
        opts.control = Some("127.0.0.1:0".parse()?);
        if let Some(p) = profile {
            opts.profile = keyway_lock::profile::Profile::parse(p)
                .map_err(|e| anyhow!("--lock-profile: {e}"))?;
        }
        let running = keyway_lock::shell::start(&opts)?;
        Ok(Lab {
            running,
            domain,
            class,
            pin: dir.pin()?,
            floor,
            device_key,
            profile: profile.map(str::to_owned),
        })
    }

    /// Where it serves SMP.
    pub fn smp(&self) -> SocketAddr {
        self.running.smp
    }

    /// The audit's target: the lock's SMP address.
    pub fn target(&self) -> Target {
        Target::Udp(self.running.smp)
    }

    /// Fills in what the lock's provisioning says: its control socket,
    /// vendor domain, class, floor and device key (these replace what
    /// `o` had: they are this lock's), its PIN unless `o` names one, and
    /// that it runs in this process (and, for a flawed profile, that the
    /// report's lock line says so).
    pub fn configure(&self, o: &mut audit::Options) {
        o.control = self.running.control.map(ControlAddr::Tcp);
        o.vendor_domain = Some(self.domain.clone());
        o.class = Some(self.class.clone());
        o.floor = Some(self.floor);
        o.device_key = Some(self.device_key.clone());
        if o.pin.is_none() {
            o.pin = Some(self.pin.clone());
        }
        o.in_process = true;
        // It powers up in milliseconds.
        o.boot_wait = std::time::Duration::from_secs(5);
        o.lock_note = match self.profile.as_deref() {
            Some(p) if p != "default" => Some(format!(
                "simulated with keyway-lock --profile {p}, deliberately flawed"
            )),
            _ => None,
        };
    }

    /// Cuts its power (its flash stays in the state directory).
    pub fn stop(self) {
        self.running.power_off();
    }
}

/// Runs `keyway audit --lock-state DIR [--lock-profile P]`: the audit in
/// its own unplugged network against a simulated lock started there.
/// Exits non-zero (an error) if any check FAILs.
pub fn audit(a: &AuditArgs, out: &mut dyn Write) -> Result<()> {
    let state = a
        .lock_state
        .as_deref()
        .ok_or_else(|| anyhow!("the lab needs --lock-state DIR"))?;
    let Some(namespace) = audit::cli::isolate(a)? else {
        return Ok(());
    };
    let lab = Lab::start(state, a.lock_profile.as_deref())?;
    // (On an error from here the lab's lock powers off as it drops.)
    let mut o = audit::cli::options(a, lab.target(), namespace)?;
    lab.configure(&mut o);
    let r = audit::run(&o);
    lab.stop();
    audit::cli::finish(a, &r?, out)
}
