//! Sample messages (feature `samples`, for tests only): one request of
//! every kind Keyway speaks, so keyway-smp's round trips and
//! keyway-agent's sweeps over its authority table share one list. No
//! firmware enables the feature.

use crate::auth::Auth;
use crate::keyway_group::{
    Consent, Log, Pair, PakeFinish, PakeStart, Sealed, SessionFinish, SessionStart, SettingsReq,
    Signed, Unpair,
};
use crate::{Request, img, os};

/// How many requests [`requests`] returns.
pub const REQUESTS: usize = 28;

/// Every request Keyway speaks, one of each (two state writes: test and
/// confirm), with `auth` in every body that carries one.
pub fn requests(auth: Option<Auth>) -> [Request<'static>; REQUESTS] {
    let signed = Signed { auth };
    [
        Request::Echo(os::Echo { d: "hi" }),
        Request::Reset(signed),
        Request::Params,
        Request::Info(os::Info { format: None }),
        Request::ImageState,
        Request::ImageStateWrite(img::StateWrite {
            hash: Some(&[9; 32]),
            confirm: Some(false),
            kw: true,
            auth,
        }),
        Request::ImageStateWrite(img::StateWrite {
            hash: None,
            confirm: Some(true),
            kw: false,
            auth,
        }),
        Request::Upload(img::Upload {
            off: 0,
            data: &[0xAA; 64],
            len: Some(1000),
            sha: Some(&[7; 32]),
            image: Some(0),
            upgrade: None,
            auth,
            kw: true,
        }),
        Request::Erase(img::Erase {
            slot: Some(1),
            auth,
            kw: false,
        }),
        Request::Status(signed),
        Request::Lock(signed),
        Request::Unlock(signed),
        Request::Presence(signed),
        Request::Notes(signed),
        Request::Consent(Consent { accept: true, auth }),
        Request::Log(Log { off: 0, auth }),
        Request::Challenge,
        Request::Pair(Pair {
            key: [4; 32],
            name: Some("mallory"),
        }),
        Request::FactoryReset,
        Request::Settings(SettingsReq {
            auto_install_cve: Some(true),
            install_needs_unlocked: Some(false),
            auth,
        }),
        Request::PakeParams,
        Request::PakeStart(PakeStart { msg: &[4; 32] }),
        Request::PakeFinish(PakeFinish { msg: &[3; 113] }),
        Request::SessionStart(SessionStart { msg: &[1; 66] }),
        Request::SessionFinish(SessionFinish { msg: &[5; 92] }),
        Request::Sealed(Sealed { msg: &[6; 80] }),
        Request::Owners(signed),
        Request::Unpair(Unpair {
            key_id: [7; 8],
            auth,
        }),
    ]
}
