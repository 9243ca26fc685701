//! Checks 13 and 14: pairing without the setup code, and a stranger
//! during the owner's pairing window.

use super::*;

impl Session<'_> {
    pub(super) fn pairing_without_code(&mut self) -> Result<Check> {
        let mut ev = Vec::new();
        let mut fails = Vec::new();
        let before = self.owner_ids()?;
        ev.push(format!("owners before: {}", before.len()));
        self.ctl(json!({"cmd": "presence", "seconds": 60}))?;
        ev.push("the presence window is open (a person at the lock)".into());
        let key = SigningKey::generate(Algorithm::Ed25519)
            .map_err(|e| anyhow!("generating a key: {e}"))?;
        let mut s = self.stranger()?;
        let wrong = self.wrong_code();
        match s.pair_by_code(&key, &wrong) {
            Ok(Answer::Ok(_)) => {
                fails.push("a wrong setup code paired".to_owned());
                ev.push("pairing with a wrong setup code: PAIRED".into());
            }
            Ok(a) => ev.push(format!(
                "pairing with a wrong setup code: refused ({})",
                a.describe()
            )),
            Err(e) => ev.push(format!("pairing with a wrong setup code: refused ({e:#})")),
        }
        let mut s = self.stranger()?;
        let a = s.pair(&key)?;
        ev.push(format!(
            "a plain pair (id 8) with only the public key: {}",
            a.describe()
        ));
        if !a.is_err() {
            fails.push("a plain pair with only a public key was accepted".to_owned());
        }
        let _ = self.ctl(json!({"cmd": "presence-close"}));
        let after = self.owner_ids()?;
        let theirs = keyway_channel::key_id(
            &<[u8; 32]>::try_from(key.raw_public_key_bytes().as_slice())
                .map_err(|_| anyhow!("an Ed25519 key"))?,
        );
        ev.push(format!("owners after: {}", after.len()));
        if after.contains(&theirs) {
            fails.push(format!(
                "the key {} is now an owner",
                keyway_vendor::keys::hex(&theirs)
            ));
        }
        Ok(verdict(
            13,
            &fails,
            "no way in without the setup code: a wrong code and a plain pair were refused",
            "pairing must need the presence window AND the setup code, proven by a PAKE (SPAKE2+); refuse every other way to add an owner",
            ev,
        ))
    }

    pub(super) fn stranger_in_window(&mut self) -> Result<Check> {
        let mut ev = Vec::new();
        let mut fails = Vec::new();
        let (Some(older), Some(newer)) = (self.next_release(None)?, self.next_release(None)?)
        else {
            return Ok(skip(14, "needs two fresh releases: give --vendor-key", ev));
        };
        // The owner's newer release waits for consent.
        let u = self.upload_noted(&newer, "the owner uploaded", &mut ev)?;
        if matches!(u, UploadOutcome::Done { .. }) {
            self.last_genuine = Some(newer.clone());
        } else {
            return Ok(fail(14, "the owner's own upload did not complete", ev));
        }
        self.ctl(json!({"cmd": "presence", "seconds": 60}))?;
        ev.push("the owner opens the presence window".into());
        let before = self.owner_ids()?;
        let key = SigningKey::generate(Algorithm::Ed25519)
            .map_err(|e| anyhow!("generating a key: {e}"))?;
        let mut s = self.stranger()?;
        let a = s.pair(&key)?;
        ev.push(format!(
            "a stranger's plain pair with its own key: {}",
            a.describe()
        ));
        let wrong = self.wrong_code();
        let mut s2 = self.stranger()?;
        let b = s2.pair_by_code(&key, &wrong);
        ev.push(format!(
            "a stranger's pairing with a guessed setup code: {}",
            match &b {
                Ok(a) => a.describe(),
                Err(e) => format!("{e:#}"),
            }
        ));
        let after = self.owner_ids()?;
        if after.len() > before.len() {
            fails.push(format!(
                "a stranger became an owner ({} owners, were {})",
                after.len(),
                before.len()
            ));
        }
        // The older signed release, by the stranger, in the window.
        let mut s3 = self.stranger()?;
        let u = s3.upload(&older.envelope, Duration::ZERO, &mut |_| true)?;
        ev.push(format!(
            "the stranger uploads the older {} (sequence {} < {}): {}",
            older.label,
            older.sequence,
            newer.sequence,
            u.describe(older.envelope.len())
        ));
        let test = s3.try_request(
            Op::Write,
            group::IMAGE,
            0,
            vec![
                (text("hash"), Value::Bytes(older.hash().to_vec())),
                (text("confirm"), Value::Bool(false)),
            ],
        )?;
        ev.push(format!(
            "the stranger asks for a test boot of it: {}",
            test.map_or("no answer".into(), |a| a.describe())
        ));
        let _ = self.ctl(json!({"cmd": "presence-close"}));
        let imgs = self.smp.images()?;
        let slot = |r: &crate::audit::releases::Release| {
            imgs.iter()
                .find(|s| s.hash.as_slice() == r.hash().as_slice())
                .map(|s| s.active)
        };
        let (newer_at, older_at) = (slot(&newer), slot(&older));
        let say = |at: Option<bool>| match at {
            Some(true) => "runs",
            Some(false) => "is in the other slot",
            None => "is in no slot",
        };
        ev.push(format!(
            "then the owner's {} {}; the older {} {}",
            newer.label,
            say(newer_at),
            older.label,
            say(older_at)
        ));
        // Replaced: the owner's release is gone, or the older one runs.
        if newer_at.is_none() || older_at == Some(true) {
            fails.push(format!(
                "the stranger replaced the owner's pending sequence {} with the older {}",
                newer.sequence, older.sequence
            ));
        }
        Ok(verdict(
            14,
            &fails,
            "during the owner's window a stranger could neither pair nor replace the pending release with an older one",
            "the window must not be enough to pair (the setup code is needed), and an upload without an owner's session must never replace a pending newer release with an older one",
            ev,
        ))
    }
}
