//! The requests the agent authorized, by group and command: the OS
//! group's echo, parameters and info, the image group's state, upload
//! and erase (the Keyway group's commands are in [`crate::keyway_group`]).

use ciborium::Value;

use crate::smp::{self, MgmtErr, Op, Request, get_bool, get_bytes, get_text, get_u64, group, text};
use keyway_smp::{img::cmd as img_cmd, os::cmd as os_cmd};

use super::{BUF_COUNT, Body, Fail, OS_INVALID_FORMAT, Server, inval, not_sup};

impl Server {
    /// Runs a request the agent authorized (`by_owner`: an owner's
    /// session asked). OS resets are not here: the agent runs them
    /// ([`Server::agent_reset`]).
    pub(super) fn dispatch(
        &mut self,
        r: &Request,
        by_owner: bool,
        now_ms: u64,
    ) -> Result<Body, Fail> {
        let h = r.header;
        let write = h.op == Op::Write;
        match (h.group, h.id) {
            (group::OS, os_cmd::ECHO) => {
                let d = get_text(&r.body, "d").map_err(inval)?.unwrap_or("");
                Ok(vec![(text("r"), text(d))])
            }
            (group::OS, os_cmd::PARAMS) if !write => Ok(vec![
                (text("buf_size"), Value::from(smp::MAX_FRAME as u64)),
                (text("buf_count"), Value::from(BUF_COUNT)),
            ]),
            (group::OS, os_cmd::INFO) if !write => {
                let f = get_text(&r.body, "format").map_err(inval)?.unwrap_or("s");
                self.info(f).map(|o| vec![(text("output"), text(&o))])
            }
            (group::IMAGE, img_cmd::STATE) if !write => Ok(self.state_body()),
            (group::IMAGE, img_cmd::STATE) => {
                let hash = get_bytes(&r.body, "hash").map_err(inval)?;
                let confirm = get_bool(&r.body, "confirm")
                    .map_err(inval)?
                    .unwrap_or(false);
                if confirm {
                    self.core.confirm(hash)?;
                } else {
                    let hash =
                        hash.ok_or_else(|| inval("\"hash\" is required to test an image".into()))?;
                    if self.pending.as_ref().is_some_and(|p| p.hash[..] == *hash) {
                        // A test boot of the pending update is the consent
                        // of a person at the lock, or of the owner whose
                        // session asked (the agent let in nobody else).
                        let by = self.consent_by(by_owner);
                        self.consent(
                            if by_owner {
                                "an owner's test boot"
                            } else {
                                "a test boot asked for with the presence window open"
                            },
                            by,
                        );
                        // An owner's test boot resets at once; a stock
                        // tool's in the window is armed, and the reset it
                        // sends next boots it (the window allows one).
                        if let Some(Err(why)) = self.install(by_owner) {
                            return Err(Fail::Smp(
                                MgmtErr::BadState,
                                format!("{why} (consent kept: the lock installs by itself then)"),
                            ));
                        }
                    } else {
                        self.core.test(hash)?;
                    }
                }
                Ok(self.state_body())
            }
            (group::IMAGE, img_cmd::UPLOAD) if write => {
                self.upload_chunk(&r.body, by_owner, now_ms)
            }
            (group::IMAGE, img_cmd::ERASE) if write => {
                let slot = get_u64(&r.body, "slot").map_err(inval)?;
                let slot = slot.map(|s| u8::try_from(s).unwrap_or(u8::MAX));
                // A refused erase (the running slot, a bad slot number)
                // changes nothing: the pending update, its consent and an
                // upload in progress stay.
                self.core.erase(slot)?;
                self.upload = None;
                self.pending = None;
                self.clear_update();
                Ok(Vec::new())
            }
            (group::KEYWAY, _) => self.keyway(r, now_ms),
            (g, id) => Err(not_sup(
                format_args!("group {g} command {id}"),
                write,
                "is not supported",
            )),
        }
    }

    pub(super) fn info(&self, format: &str) -> Result<String, Fail> {
        let release = match self.core.running() {
            Some(s) => self.core.version(s).unwrap_or_else(|| format!("slot{s}")),
            None => "recovery".to_owned(),
        };
        let all = "snrvbmpio";
        let mut want = [false; 9];
        for c in format.chars() {
            match c {
                'a' => want = [true; 9],
                c => match all.find(c) {
                    Some(i) => want[i] = true,
                    None => {
                        return Err(Fail::Os(
                            OS_INVALID_FORMAT,
                            MgmtErr::Inval,
                            format!("format character {c:?} is not one of {all}a"),
                        ));
                    }
                },
            }
        }
        let fields = [
            "Keyway".to_owned(),
            "keyway-lock".to_owned(),
            release,
            env!("CARGO_PKG_VERSION").to_owned(),
            String::new(),
            "nrf52840-sim".to_owned(),
            "cortex-m4".to_owned(),
            // The hardware platform: the simulator and the lock model.
            format!("keyway-sim/{}", self.model.name),
            "Keyway".to_owned(),
        ];
        Ok(fields
            .iter()
            .zip(want)
            .filter(|(f, w)| *w && !f.is_empty())
            .map(|(f, _)| f.as_str())
            .collect::<Vec<_>>()
            .join(" "))
    }

    pub(super) fn state_body(&mut self) -> Body {
        let images = self
            .core
            .views()
            .into_iter()
            .map(|v| {
                let mut m = vec![
                    (text("image"), Value::from(0u8)),
                    (text("slot"), Value::from(v.slot)),
                    (text("version"), text(&v.version)),
                    (text("hash"), Value::Bytes(v.hash.to_vec())),
                ];
                for (k, on) in [
                    ("bootable", v.bootable),
                    ("pending", v.pending),
                    ("confirmed", v.confirmed),
                    ("active", v.active),
                    ("permanent", false),
                ] {
                    m.push((text(k), Value::Bool(on)));
                }
                Value::Map(m)
            })
            .collect();
        vec![(text("images"), Value::Array(images))]
    }
}
