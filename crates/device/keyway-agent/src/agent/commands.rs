//! The commands an authorized request runs: the Keyway group's own (status,
//! bolt, owners, consent, settings, factory reset), the upload gate, and
//! what the shell serves through [`Device::serve`].

use super::*;

impl<F: NorFlash, const N: usize> Agent<F, N> {
    pub(super) fn status_rsp<'d>(
        &self,
        sensors: Sensors,
        fw: &Firmware<'d>,
        now_ms: u64,
    ) -> keyway_group::Status<'d> {
        let s = self.store.state().settings();
        keyway_group::Status {
            bolt: sensors.bolt,
            door: sensors.door,
            battery_mv: sensors.battery_mv,
            battery_mwh: sensors.battery_mwh,
            tamper: sensors.tamper,
            lockout_s: sensors.lockout_s,
            model: fw.model,
            version: fw.version,
            slot: fw.slot,
            image: fw.image,
            trial: fw.trial,
            presence_s: self
                .window
                .open_until_ms
                .saturating_sub(now_ms)
                .div_ceil(1000),
            owners: self.store.state().owner_count() as u64,
            update: fw.update,
            settings: keyway_group::Settings {
                auto_install_cve: s.auto_install_cve,
                install_needs_unlocked: s.install_needs_unlocked,
            },
            device_key: Some(self.device_key.verifying_key().to_bytes()),
        }
    }

    /// Runs an authorized command (not a channel message).
    #[inline(never)]
    pub(super) fn command<D: Device>(
        &mut self,
        ctx: Ctx,
        device: &mut D,
        hdr: &Header,
        call: Authorized<'_>,
        out: &mut [u8],
    ) -> Outcome {
        let now = ctx.now;
        let typed = call.request.wants_typed_refusal();
        let by = call.by.owner();
        let mut event = Event::None;
        let len = match *call.request {
            Request::Echo(m) => ok_frame(out, hdr, &Response::Echo(os::EchoRsp { r: m.d })),
            Request::Params => ok_frame(
                out,
                hdr,
                &Response::Params(os::ParamsRsp {
                    buf_size: MAX_FRAME as u64,
                    buf_count: 1,
                }),
            ),
            Request::Presence(_) => ok_frame(
                out,
                hdr,
                &Response::Presence(keyway_group::Presence {
                    open: self.window_open(now.ms),
                    remaining_s: self
                        .window
                        .open_until_ms
                        .saturating_sub(now.ms)
                        .div_ceil(1000),
                }),
            ),
            Request::Reset(_) => {
                // A reset while the window is open is paid for by the
                // press that opened it, and consumes it (below): one reset
                // per press, so a loop of resets needs a person at the
                // lock for each. (An owner's sealed reset in the window
                // counts the same: anyone in range could send a plain one
                // then.) With the window shut only an owner may reset,
                // from afar, and its resets are rate-limited.
                let in_window = self.window_open(now.ms);
                // FLAW `open_reset`: no limit either.
                #[cfg(feature = "flawed-profiles")]
                let unlimited = in_window || self.config.flaws.open_reset;
                #[cfg(not(feature = "flawed-profiles"))]
                let unlimited = in_window;
                let v = if unlimited {
                    Verdict::Allowed
                } else {
                    self.resets.check(now.ms)
                };
                if v.is_allowed() {
                    // The lock may decline (the reset of `smpmgr upgrade`
                    // in the window is the consent to install, and an
                    // install the policy postpones resets nothing now).
                    match device.reset_requested(call.by) {
                        Ok(()) => {
                            if in_window {
                                self.close_window();
                            }
                            event = Event::Reset { by: call.by };
                            ok_frame(out, hdr, &Response::Reset)
                        }
                        Err(e) => error_frame(out, hdr, e.rc, e.refusal, typed),
                    }
                } else {
                    let r = Refusal::RateLimited {
                        retry_s: verdict_secs(v),
                    };
                    refuse_frame(out, hdr, r, typed)
                }
            }
            Request::Status(_) => {
                let fw = device.firmware();
                let st = self.status_rsp(device.sensors(), &fw, now.ms);
                ok_frame(out, hdr, &Response::Status(st))
            }
            Request::Lock(_) | Request::Unlock(_) => {
                // Only an owner's session gets here (authority table).
                let Some(by) = by else {
                    return Outcome {
                        len: refuse_frame(out, hdr, Refusal::SessionRequired, true),
                        event,
                    };
                };
                let (to, e) = match call.request {
                    Request::Unlock(_) => (Bolt::Unlocked, Event::Unlocked { by }),
                    _ => (Bolt::Locked, Event::Locked { by }),
                };
                let bolt = device.drive_bolt(to);
                event = e;
                let fw = device.firmware();
                let mut st = self.status_rsp(device.sensors(), &fw, now.ms);
                st.bolt = bolt;
                ok_frame(out, hdr, &Response::Status(st))
            }
            Request::Consent(m) => {
                let Some(by) = by else {
                    return Outcome {
                        len: refuse_frame(out, hdr, Refusal::SessionRequired, true),
                        event,
                    };
                };
                let fw = device.firmware();
                match fw.pending {
                    None => refuse_frame(out, hdr, Refusal::NothingPending, true),
                    Some(p) if !p.notes_offered => {
                        refuse_frame(out, hdr, Refusal::NotesNotOffered, true)
                    }
                    Some(p) => {
                        let r = if m.accept {
                            self.store_consent(Some(&Consent {
                                digest: p.digest,
                                sequence: p.sequence,
                                granted_by: GrantedBy::Owner(by),
                                time: now.time,
                            }))
                        } else {
                            self.store_consent(None)
                        };
                        match r {
                            Ok(()) => {
                                event = Event::Consent {
                                    accept: m.accept,
                                    by,
                                };
                                // The installer acts on it now (arms the
                                // update, or erases the refused one), so
                                // the answer tells where it stands.
                                device.consent_stored(m.accept.then_some(p.digest));
                                let fw = device.firmware();
                                ok_frame(
                                    out,
                                    hdr,
                                    &Response::Consent(keyway_group::ConsentRsp {
                                        update: fw.update,
                                    }),
                                )
                            }
                            Err(_) => error_frame(out, hdr, MgmtErr::Unknown, None, false),
                        }
                    }
                }
            }
            Request::Settings(m) => {
                let Some(by) = by else {
                    return Outcome {
                        len: refuse_frame(out, hdr, Refusal::SessionRequired, true),
                        event,
                    };
                };
                let mut s = self.store.state().settings();
                if let Some(v) = m.auto_install_cve {
                    s.auto_install_cve = v;
                }
                if let Some(v) = m.install_needs_unlocked {
                    s.install_needs_unlocked = v;
                }
                match self.store.set_settings(&mut self.flash, s) {
                    Ok(()) => {
                        event = Event::Settings { by };
                        ok_frame(
                            out,
                            hdr,
                            &Response::Settings(keyway_group::SettingsRsp {
                                settings: keyway_group::Settings {
                                    auto_install_cve: s.auto_install_cve,
                                    install_needs_unlocked: s.install_needs_unlocked,
                                },
                            }),
                        )
                    }
                    Err(_) => error_frame(out, hdr, MgmtErr::Unknown, None, false),
                }
            }
            Request::Owners(_) => {
                let mut list = [keyway_group::OwnerEntry {
                    key_id: [0; 8],
                    name: "",
                    paired: None,
                }; MAX_OWNERS];
                let mut n = 0;
                for (slot, o) in list.iter_mut().zip(self.store.state().owners()) {
                    // The store keeps the lock's RTC and boot count, not a
                    // calendar time: `paired` stays out.
                    *slot = keyway_group::OwnerEntry {
                        key_id: o.id(),
                        name: o.name(),
                        paired: None,
                    };
                    n += 1;
                }
                ok_frame(
                    out,
                    hdr,
                    &Response::Owners(keyway_group::OwnersRsp {
                        owners: keyway_smp::seq::Seq::Items(&list[..n]),
                    }),
                )
            }
            Request::Unpair(m) => {
                let Some(by) = by else {
                    return Outcome {
                        len: refuse_frame(out, hdr, Refusal::SessionRequired, true),
                        event,
                    };
                };
                match self.store.remove_owner(&mut self.flash, &m.key_id) {
                    Ok(_) => {
                        event = Event::OwnerRemoved {
                            key_id: m.key_id,
                            by,
                        };
                        ok_frame(
                            out,
                            hdr,
                            &Response::Unpair(keyway_group::UnpairRsp {
                                key_id: m.key_id,
                                owners: self.store.state().owner_count() as u64,
                            }),
                        )
                    }
                    Err(store::Error::UnknownOwner { .. }) => {
                        refuse_frame(out, hdr, Refusal::UnknownOwner, true)
                    }
                    Err(_) => error_frame(out, hdr, MgmtErr::Unknown, None, false),
                }
            }
            Request::FactoryReset => match self.factory_reset() {
                Ok(()) => {
                    event = Event::FactoryReset;
                    ok_frame(
                        out,
                        hdr,
                        &Response::FactoryReset(keyway_group::FactoryResetRsp { owners: 0 }),
                    )
                }
                Err(_) => error_frame(out, hdr, MgmtErr::Unknown, None, false),
            },
            Request::Upload(u) => {
                let me = by.map_or(Uploader::Peer(ctx.peer), Uploader::Owner);
                if let Some(r) = self.upload_gate(me, u.off, now.ms) {
                    refuse_frame(out, hdr, r, typed)
                } else {
                    let (len, ok) = Self::serve(device, hdr, call, typed, out);
                    if ok {
                        self.upload_took(me, &u, now.ms);
                    } else if self.upload.is_some_and(|b| b.by == me) {
                        // The shell refused the chunk and dropped the
                        // upload (a bad head, digest or size): it binds
                        // nobody any more, or the lock would refuse every
                        // other uploader for UPLOAD_IDLE_MS.
                        self.upload = None;
                    }
                    len
                }
            }
            Request::Erase(_) => {
                let me = by.map_or(Uploader::Peer(ctx.peer), Uploader::Owner);
                // Erasing the slot would destroy someone else's upload.
                if let Some(r) = self.upload_gate(me, 1, now.ms) {
                    refuse_frame(out, hdr, r, typed)
                } else {
                    let (len, ok) = Self::serve(device, hdr, call, typed, out);
                    if ok && self.upload.is_some_and(|b| b.by == me) {
                        self.upload = None;
                    }
                    len
                }
            }
            Request::Info(_)
            | Request::ImageState
            | Request::ImageStateWrite(_)
            | Request::Notes(_)
            | Request::Log(_) => Self::serve(device, hdr, call, typed, out).0,
            // Channel messages are handled before; anything else was
            // refused by the authority table.
            _ => error_frame(out, hdr, MgmtErr::NotSup, None, false),
        };
        Outcome { len, event }
    }

    /// Whether `me` may send an upload chunk at `off` now: `None` if so,
    /// else the refusal. An upload in progress belongs to whoever began it
    /// until it has been idle [`UPLOAD_IDLE_MS`]; then only a new first
    /// chunk (`off` 0) may replace it.
    pub(super) fn upload_gate(&self, me: Uploader, off: u64, now_ms: u64) -> Option<Refusal> {
        // FLAW `any_chunk`: whoever sends a chunk, it goes in.
        #[cfg(feature = "flawed-profiles")]
        if self.config.flaws.any_chunk {
            return None;
        }
        let b = self.upload?;
        if b.by == me {
            return None;
        }
        let idle = now_ms.saturating_sub(b.last_ms) >= UPLOAD_IDLE_MS;
        (!idle || off != 0).then_some(Refusal::UploadBusy)
    }

    /// The shell took a chunk of `me`'s upload.
    pub(super) fn upload_took(
        &mut self,
        me: Uploader,
        u: &keyway_smp::img::Upload<'_>,
        now_ms: u64,
    ) {
        if u.off == 0 {
            self.upload = Some(UploadBinding {
                by: me,
                len: u.len.unwrap_or(0),
                last_ms: now_ms,
            });
        } else if let Some(b) = self.upload.as_mut() {
            b.last_ms = now_ms;
        }
        // The last chunk ends it.
        if let Some(b) = self.upload
            && u.off.saturating_add(u.data.len() as u64) >= b.len
        {
            self.upload = None;
        }
    }

    /// The shell serves `call`; returns the answer's length and whether
    /// it is a success.
    pub(super) fn serve<D: Device>(
        device: &mut D,
        hdr: &Header,
        call: Authorized<'_>,
        typed: bool,
        out: &mut [u8],
    ) -> (usize, bool) {
        let Some((head, rest)) = out.split_at_mut_checked(HEADER_LEN) else {
            return (0, false);
        };
        let mut w = Writer::new(rest);
        match device.serve(call, &mut w) {
            Ok(()) => {
                let n = w.len();
                let Ok(len) = u16::try_from(n) else {
                    return (0, false);
                };
                let mut h = hdr.response();
                h.len = len;
                head.copy_from_slice(&h.encode());
                (HEADER_LEN + n, true)
            }
            Err(ServeError {
                group_rc: Some(g),
                refusal,
                ..
            }) if hdr.smp_version() == keyway_smp::Version::V2 => {
                let refusal = refusal.filter(|_| typed);
                let body = keyway_smp::ErrorRsp {
                    rc: None,
                    group: Some((hdr.group, u64::from(g))),
                    rsn: None,
                    refusal,
                };
                (
                    keyway_smp::answer_frame(out, hdr, |w| body.encode(w)).unwrap_or(0),
                    false,
                )
            }
            Err(e) => (error_frame(out, hdr, e.rc, e.refusal, typed), false),
        }
    }

    /// Factory reset, keeping the setup code's verifier (it is printed on
    /// the lock): consent cleared, settings back to their defaults, then
    /// each owner removed, one record each, so a power cut part way leaves
    /// fewer owners and the person repeats the reset.
    pub(super) fn factory_reset(&mut self) -> Result<(), store::Error<F::Error>> {
        self.store.clear_consent(&mut self.flash)?;
        self.store
            .set_settings(&mut self.flash, store::Settings::default())?;
        self.store.clear_wrong_codes(&mut self.flash)?;
        loop {
            let first = self.store.state().owners().next().map(|o| o.id());
            let Some(id) = first else { break };
            self.store.remove_owner(&mut self.flash, &id)?;
            self.table.close_owner(&id);
        }
        self.close_window();
        self.run = Run {
            pake: LockPairing::new(),
            peer: None,
        };
        self.upload = None;
        Ok(())
    }
}
