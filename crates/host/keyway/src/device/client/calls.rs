//! The typed calls: the OS, image and Keyway groups, the upload, the
//! audit-log export, and the raw request the audit uses.

use super::*;

impl<T: Transport> Client<T> {
    /// One raw request with any body (the audit's deliberately odd
    /// requests) and its checked answer as a map.
    pub fn request(
        &mut self,
        what: &str,
        op: Op,
        group: u16,
        id: u8,
        body: Map,
    ) -> Result<Map, DeviceError> {
        let seq = self.next_seq();
        let out = Outgoing {
            what,
            frame: smp::encode_request(op, group, id, seq, body),
            seq,
            key: (op, group, id),
        };
        let body = self.exchange(&out)?;
        map_of(what, &body)
    }

    /// OS echo: the lock returns `d`.
    pub fn echo(&mut self, d: &str) -> Result<String, DeviceError> {
        let b = self.call("echo", &Request::Echo(os::Echo { d }))?;
        Ok(typed::<os::EchoRsp>("echo", &b)?.r.to_owned())
    }

    /// OS reset: the lock reboots after answering.
    pub fn reset(&mut self) -> Result<(), DeviceError> {
        // The window's, or (in a session) an owner's.
        let b = self.call("reset", &Request::Reset(keyway_group::Signed::default()))?;
        typed::<os::Empty>("reset", &b).map(|_| ())
    }

    /// The MCUmgr parameters (OS group, command 6): the lock's SMP buffer
    /// size (`buf_size`, the longest frame it takes, header included) and
    /// count. A client on a link that fragments (BLE) sends frames up to
    /// `buf_size`, as `smpclient` does.
    pub fn params(&mut self) -> Result<os::ParamsRsp, DeviceError> {
        let b = self.call("parameters", &Request::Params)?;
        typed("parameters", &b)
    }

    /// The image group's slot list.
    pub fn image_state(&mut self) -> Result<Vec<ImageSlot>, DeviceError> {
        let b = self.call("image state", &Request::ImageState)?;
        parse_images("image state", &b)
    }

    /// Marks the image with `hash` for a test boot at the next reset.
    pub fn image_test(&mut self, hash: &[u8]) -> Result<Vec<ImageSlot>, DeviceError> {
        self.image_write("image test", hash, false)
    }

    /// Confirms the image with `hash` (the running one).
    pub fn image_confirm(&mut self, hash: &[u8]) -> Result<Vec<ImageSlot>, DeviceError> {
        self.image_write("image confirm", hash, true)
    }

    pub(super) fn image_write(
        &mut self,
        what: &str,
        hash: &[u8],
        confirm: bool,
    ) -> Result<Vec<ImageSlot>, DeviceError> {
        let m = img::StateWrite {
            hash: Some(hash),
            confirm: Some(confirm),
            kw: true,
            auth: None,
        };
        let b = self.call(what, &Request::ImageStateWrite(m))?;
        parse_images(what, &b)
    }

    /// Uploads `file` (an envelope) in chunks that keep each frame within
    /// the transport's MTU, continuing from whatever offset the lock
    /// answers (a resumed upload starts where the lock's journal stands).
    /// `progress(done, total)` is called after every answer.
    pub fn upload(
        &mut self,
        file: &[u8],
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<UploadReport, DeviceError> {
        const WHAT: &str = "upload";
        let len = file.len() as u64;
        if file.is_empty() {
            return Err(DeviceError::Usage {
                what: WHAT.into(),
                why: "the file is empty".into(),
            });
        }
        let sha: [u8; 32] = Sha256::digest(file).into();
        let mut budget = self
            .transport
            .mtu()
            .min(MAX_FRAME)
            .saturating_sub(keyway_smp::HEADER_LEN);
        if self.sealed() {
            // The inner frame travels in a record inside the outer frame.
            budget = (budget + keyway_smp::HEADER_LEN)
                .saturating_sub(SEALED_OUTER)
                .min(MAX_SEALED_REQUEST)
                .saturating_sub(keyway_smp::HEADER_LEN);
        }
        let mut report = UploadReport {
            len,
            resumed_from: 0,
            requests: 0,
            chunk: 0,
        };
        let mut off = 0u64;
        let mut stalled = 0u32;
        // Each answer either advances, or moves the offset: a bounded
        // number of requests for any lock.
        let limit = 3 * (len / 16 + 1) + 64;
        while report.requests < limit {
            let first = off == 0;
            let mut chunk = img::Upload {
                off,
                data: &[],
                len: first.then_some(len),
                sha: first.then_some(&sha[..]),
                image: first.then_some(0),
                upgrade: None,
                auth: None,
                kw: true,
            };
            let n = chunk_len(&chunk, budget).min(usize::try_from(len - off).unwrap_or(usize::MAX));
            if n == 0 {
                return Err(DeviceError::Usage {
                    what: WHAT.into(),
                    why: format!(
                        "an MTU of {} bytes leaves no room for data",
                        self.transport.mtu()
                    ),
                });
            }
            let start = usize::try_from(off).unwrap_or(usize::MAX);
            chunk.data = file.get(start..start + n).unwrap_or(&[]);
            report.chunk = report.chunk.max(n);
            let b = self.call(WHAT, &Request::Upload(chunk))?;
            report.requests += 1;
            let answer: img::UploadRsp = typed(WHAT, &b)?;
            let next = answer.off;
            if next > len {
                return Err(malformed(
                    WHAT,
                    format!("it answers offset {next}, past the file's {len} bytes"),
                ));
            }
            if first && next > n as u64 {
                report.resumed_from = next;
            }
            progress(next, len);
            if next == len {
                if answer.matched == Some(false) {
                    return Err(malformed(
                        WHAT,
                        "the lock reports the SHA-256 does not match",
                    ));
                }
                return Ok(report);
            }
            if next == off + n as u64 || next != off {
                stalled = 0;
            } else {
                stalled += 1;
                if stalled > 8 {
                    return Err(malformed(
                        WHAT,
                        format!("it keeps answering offset {next} without taking data"),
                    ));
                }
            }
            off = next;
        }
        Err(malformed(
            WHAT,
            format!("not complete after {} requests", report.requests),
        ))
    }

    /// The Keyway group's `status` (an owner's, in a session).
    pub fn status(&mut self) -> Result<Map, DeviceError> {
        let b = self.call("status", &Request::Status(keyway_group::Signed::default()))?;
        typed::<keyway_group::Status>("status", &b)?;
        map_of("status", &b)
    }

    /// The Keyway group's `status` body, checked with its typed decode
    /// (`keyway_smp::keyway_group::Status::decode` reads it again without a copy):
    /// what a client decides on, typed.
    pub fn status_body(&mut self) -> Result<Vec<u8>, DeviceError> {
        let b = self.call("status", &Request::Status(keyway_group::Signed::default()))?;
        typed::<keyway_group::Status>("status", &b)?;
        Ok(b)
    }

    /// `consent`, answered as the body its typed decode checked
    /// (`keyway_smp::keyway_group::ConsentRsp::decode`).
    pub fn consent_body(&mut self, accept: bool) -> Result<Vec<u8>, DeviceError> {
        let m = keyway_group::Consent { accept, auth: None };
        let b = self.call("consent", &Request::Consent(m))?;
        typed::<keyway_group::ConsentRsp>("consent", &b)?;
        Ok(b)
    }

    /// The running image's SHA-256 from `status` (`None` in recovery).
    pub fn running_image(&mut self) -> Result<Option<[u8; 32]>, DeviceError> {
        let b = self.call("status", &Request::Status(keyway_group::Signed::default()))?;
        Ok(typed::<keyway_group::Status>("status", &b)?.image)
    }

    /// `lock` (an owner's, in a session; or the presence window).
    pub fn lock(&mut self) -> Result<Map, DeviceError> {
        self.bolt("lock", Request::Lock(keyway_group::Signed::default()))
    }

    /// `unlock` (an owner's, in a session; or the presence window).
    pub fn unlock(&mut self) -> Result<Map, DeviceError> {
        self.bolt("unlock", Request::Unlock(keyway_group::Signed::default()))
    }

    pub(super) fn bolt(&mut self, what: &str, req: Request<'_>) -> Result<Map, DeviceError> {
        let b = self.call(what, &req)?;
        typed::<keyway_group::Status>(what, &b)?;
        map_of(what, &b)
    }

    /// `presence`: whether the window is open.
    pub fn presence(&mut self) -> Result<Map, DeviceError> {
        let b = self.call(
            "presence",
            &Request::Presence(keyway_group::Signed::default()),
        )?;
        typed::<keyway_group::Presence>("presence", &b)?;
        map_of("presence", &b)
    }

    /// `notes`: the pending update's release notes and CVEs.
    pub fn notes(&mut self) -> Result<Map, DeviceError> {
        let b = self.call("notes", &Request::Notes(keyway_group::Signed::default()))?;
        typed::<keyway_group::Notes>("notes", &b)?;
        map_of("notes", &b)
    }

    /// `consent`: accept or refuse the pending update.
    pub fn consent(&mut self, accept: bool) -> Result<Map, DeviceError> {
        let m = keyway_group::Consent { accept, auth: None };
        let b = self.call("consent", &Request::Consent(m))?;
        typed::<keyway_group::ConsentRsp>("consent", &b)?;
        map_of("consent", &b)
    }

    /// `owners`: the paired owners, in pairing order (an owner's read, in
    /// a session).
    pub fn owners(&mut self) -> Result<Vec<OwnerInfo>, DeviceError> {
        let b = self.call("owners", &Request::Owners(keyway_group::Signed::default()))?;
        let r: keyway_group::OwnersRsp = typed("owners", &b)?;
        Ok(r.owners
            .iter()
            .map(|o| OwnerInfo {
                key_id: o.key_id,
                name: o.name.to_owned(),
                paired: o.paired,
            })
            .collect())
    }

    /// `unpair`: removes the owner with `key_id` (an owner's request, in a
    /// session); returns how many owners remain. An unknown key id is the
    /// lock's typed refusal [`Refusal::UnknownOwner`].
    pub fn unpair(&mut self, key_id: [u8; 8]) -> Result<u64, DeviceError> {
        const WHAT: &str = "unpair";
        let m = keyway_group::Unpair { key_id, auth: None };
        let b = self.call(WHAT, &Request::Unpair(m))?;
        let r: keyway_group::UnpairRsp = typed(WHAT, &b)?;
        same_key_id(WHAT, "removing", &r.key_id, "the request named", &key_id)?;
        Ok(r.owners)
    }

    /// `factory reset` (the presence window and the long press). Always in
    /// the clear, also with a paired lock: its authority is the person at
    /// the lock, not an owner's session (the agent refuses it sealed).
    pub fn factory_reset(&mut self) -> Result<Map, DeviceError> {
        let b = self.call_plain("factory reset", &Request::FactoryReset)?;
        typed::<keyway_group::FactoryResetRsp>("factory reset", &b)?;
        map_of("factory reset", &b)
    }

    /// `settings`: changes the given settings, returns them all.
    pub fn settings(
        &mut self,
        auto_install_cve: Option<bool>,
        install_needs_unlocked: Option<bool>,
    ) -> Result<Map, DeviceError> {
        let m = keyway_group::SettingsReq {
            auto_install_cve,
            install_needs_unlocked,
            auth: None,
        };
        let b = self.call("settings", &Request::Settings(m))?;
        typed::<keyway_group::SettingsRsp>("settings", &b)?;
        map_of("settings", &b)
    }

    /// The audit log's export file, reassembled from its chunks.
    /// `progress(done, total)` after every chunk.
    pub fn log_export(
        &mut self,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Vec<u8>, DeviceError> {
        const WHAT: &str = "log export";
        let mut out: Vec<u8> = Vec::new();
        let mut total: Option<u64> = None;
        loop {
            let off = out.len() as u64;
            // Every chunk is an owner's request, in the session.
            let m = keyway_group::Log { off, auth: None };
            let b = self.call(WHAT, &Request::Log(m))?;
            let chunk: keyway_group::LogRsp = typed(WHAT, &b)?;
            if chunk.off != off {
                return Err(malformed(
                    WHAT,
                    format!("asked for offset {off}, the answer is at {}", chunk.off),
                ));
            }
            let len = chunk.len;
            if len > MAX_LOG_EXPORT {
                return Err(malformed(
                    WHAT,
                    format!(
                        "an export of {len} bytes exceeds the client's limit of {MAX_LOG_EXPORT}"
                    ),
                ));
            }
            match total {
                None => total = Some(len),
                Some(t) if t != len => {
                    return Err(malformed(
                        WHAT,
                        format!("the export's length changed from {t} to {len} bytes"),
                    ));
                }
                Some(_) => {}
            }
            let data = chunk.data;
            if data.len() > MAX_LOG_CHUNK || data.len() as u64 > len.saturating_sub(off) {
                return Err(malformed(
                    WHAT,
                    format!("a chunk of {} bytes at offset {off} of {len}", data.len()),
                ));
            }
            if data.is_empty() && off < len {
                return Err(malformed(
                    WHAT,
                    format!("an empty chunk at offset {off} of {len}"),
                ));
            }
            out.extend_from_slice(data);
            progress(out.len() as u64, len);
            if out.len() as u64 == len {
                return Ok(out);
            }
        }
    }
}

/// The largest data chunk that keeps an upload body (`chunk` with its
/// data) within `budget` bytes.
fn chunk_len(chunk: &img::Upload<'_>, budget: usize) -> usize {
    let probe = img::Upload {
        data: &[],
        ..*chunk
    };
    let mut enc = [0u8; 256];
    let Ok(n) = probe.encode_into(&mut enc) else {
        return 0;
    };
    // The empty byte string's 1-byte head is in `n`.
    let fixed = n - 1;
    let budget = budget.min(MAX_BODY);
    (1..=3)
        .filter_map(|h| {
            let n = budget.checked_sub(fixed + h)?;
            (keyway_smp::cbor::bytes_head_len(n) <= h).then_some(n)
        })
        .max()
        .unwrap_or(0)
}

fn parse_images(what: &str, body: &[u8]) -> Result<Vec<ImageSlot>, DeviceError> {
    let st: img::StateRsp = typed(what, body)?;
    Ok(st
        .images
        .iter()
        .map(|i| ImageSlot {
            slot: i.slot,
            version: bounded(i.version),
            hash: i.hash.to_vec(),
            bootable: i.bootable,
            pending: i.pending,
            confirmed: i.confirmed,
            active: i.active,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_len_fills_the_budget_exactly() {
        for budget in [60usize, 100, 236, 300, 1464, 2048] {
            for off in [0u64, 23, 300, 70_000, 1 << 20] {
                let sha = [7u8; 32];
                let first = off == 0;
                let chunk = img::Upload {
                    off,
                    data: &[],
                    len: first.then_some(5000),
                    sha: first.then_some(&sha[..]),
                    image: first.then_some(0),
                    upgrade: None,
                    auth: None,
                    kw: true,
                };
                let n = chunk_len(&chunk, budget);
                if n == 0 {
                    continue;
                }
                let mut buf = vec![0u8; 4096];
                let data = vec![7u8; n + 1];
                let fits = img::Upload {
                    data: &data[..n],
                    ..chunk
                };
                let len = fits.encode_into(&mut buf).unwrap();
                assert!(len <= budget, "budget {budget}: {len} bytes");
                let over = img::Upload {
                    data: &data,
                    ..chunk
                };
                let len = over.encode_into(&mut buf).unwrap();
                assert!(len > budget, "budget {budget}: one more byte fits");
            }
        }
    }
}
