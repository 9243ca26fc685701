//! A small house for the web UI's browser test and figures: one simulated
//! lock (`keyway_lock::shell`, SMP over loopback UDP, presence window
//! always open: a person at the door) provisioned with release 1.0.0, and
//! a hub (SQLite in memory, h-link's `UdpConnector`) that holds release
//! 1.1.0 (with notes and CVEs) and serves the JSON API and the web UI on
//! 127.0.0.1. The browser adds and pairs the lock itself.

#![allow(dead_code)]

#[path = "../common/hub.rs"]
mod hub;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use keyway::hub::link::HubIdentity;
use keyway_hub::api::{Api, BundleRead, ReleasesIn, SourceError};
use keyway_hub::engine::{Hub, Incoming};
use keyway_hub::model::{Digest, ReleaseOrigin};
use keyway_hub::web::{self, WebOptions};
use keyway_lock::shell::Running;
use keyway_testkit::pair::Lab;
use keyway_testkit::release::{Vendor, factory_payload, new_payload};
use keyway_vendor::encode::{Cve, EnvelopeBuilder};
use keyway_vendor::keys::SigningKey;

pub use keyway_testkit::release::CLASS;
pub const TOKEN: &str = "demo-house-web-token-3f9a1c27d4e8b650";

pub const NOTES: &str = "# Keyway 1.1.0\n\nFixes a timing leak in PIN comparison and hardens the BLE pairing window.\n\n* CVE-2026-31337: constant-time PIN check\n* CVE-2026-31338: pairing window closes after one attempt\n\n<script>alert('notes are text, never HTML')</script>\n";

fn signed(
    vendor: &SigningKey,
    version: &str,
    sequence: u64,
    payload: Vec<u8>,
    notes: Option<&str>,
    cves: &[&str],
) -> Vec<u8> {
    let more = EnvelopeBuilder {
        notes: notes.map(str::to_string),
        cves: cves.iter().map(|c| c.parse::<Cve>().unwrap()).collect(),
        ..Default::default()
    };
    keyway_testkit::release::sign(vendor, version, sequence, &payload, more)
}

/// Reads "bundles" for the import page: `DIR/*.suit` as incoming
/// envelopes (a stand-in for `keyway hub import`'s TUF bundle reader,
/// which the shell provides); a missing path is `NotFound`.
struct DirReader;

impl ReleasesIn for DirReader {
    fn read_bundle(&self, path: &Path) -> Result<BundleRead, SourceError> {
        let rd = std::fs::read_dir(path)
            .map_err(|_| SourceError::NotFound(path.display().to_string()))?;
        let mut out = BundleRead::default();
        for e in rd.flatten() {
            let p = e.path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if name.ends_with(".suit") {
                out.incoming.push(Incoming {
                    target: format!("{CLASS}/{name}"),
                    bytes: std::fs::read(&p).map_err(|e| SourceError::Unreadable(e.to_string()))?,
                    origin: ReleaseOrigin::Bundle {
                        path: path.display().to_string(),
                    },
                });
            } else {
                out.refused
                    .push((name, "not listed in the bundle's signed targets".into()));
            }
        }
        Ok(out)
    }
}

pub struct House {
    /// The lock's state directory and its vendor.
    pub lab: Lab,
    pub lock: Running,
    pub lock_address: String,
    pub setup_code: String,
    pub url: String,
    pub release: Digest,
    pub bundle: PathBuf,
    pub hub: Arc<Hub>,
    pub rt: tokio::runtime::Runtime,
}

impl House {
    pub fn start() -> House {
        let vendor = Vendor::new();
        let pem = vendor.public_pem();
        let factory = signed(&vendor.key, "1.0.0", 1, factory_payload(), None, &[]);
        let (lab, _) = Lab::with_factory(vendor, &factory);
        let vendor = &lab.vendor.key;
        let setup_code = lab.state_dir().new_setup_code().unwrap().to_string();
        let lock = lab.start(true);
        let lock_address = format!("udp:{}", lock.smp);

        let identity = HubIdentity::load_or_create(&lab.tmp.path().join("hub")).unwrap();
        let hub = Arc::new(hub::udp_hub(identity, pem));
        let env = signed(
            vendor,
            "1.1.0",
            2,
            new_payload(),
            Some(NOTES),
            &["CVE-2026-31337:critical", "CVE-2026-31338:medium"],
        );
        let rep = hub
            .ingest(vec![Incoming {
                target: format!("{CLASS}/1.1.0.suit"),
                bytes: env.clone(),
                origin: ReleaseOrigin::Tuf {
                    url: "http://127.0.0.1:8700".into(),
                },
            }])
            .unwrap();
        assert!(rep.refused.is_empty(), "{:?}", rep.refused);
        let release = rep.imported[0].digest;
        // A bundle for the import page: the release again, a 1.2.0, and a stray file.
        let bundle = lab.tmp.path().join("usb-bundle");
        std::fs::create_dir_all(&bundle).unwrap();
        std::fs::write(bundle.join("1.1.0.suit"), &env).unwrap();
        let mut p12 = new_payload();
        p12[100..110].copy_from_slice(b"keyway 1.2");
        std::fs::write(
            bundle.join("1.2.0.suit"),
            signed(
                vendor,
                "1.2.0",
                3,
                p12,
                Some("Keyway 1.2.0: battery reporting."),
                &[],
            ),
        )
        .unwrap();
        std::fs::write(bundle.join("README.txt"), b"not a target").unwrap();

        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let api = Api {
            hub: hub.clone(),
            releases_in: Some(Arc::new(DirReader)),
            token: TOKEN.into(),
        };
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        rt.spawn(async move {
            web::serve(listener, api, WebOptions::default())
                .await
                .unwrap();
        });
        House {
            lab,
            lock,
            lock_address,
            setup_code,
            url: format!("http://{addr}"),
            release,
            bundle,
            hub,
            rt,
        }
    }
}

/// Debian's Chromium, if installed.
pub fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// The pinned Playwright driver's directory (`npm ci` there installs it).
pub fn driver_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../keyway-hub/web-tests")
}

/// Runs the browser script against the house; `figures` loads per page
/// for the page-weight / first-paint figures (0: none). Returns its stdout.
pub fn browse(h: &House, shots: &Path, figures: u32) -> String {
    let dir = driver_dir();
    let out = std::process::Command::new("node")
        .arg(dir.join("click_through.mjs"))
        .current_dir(&dir)
        .env("KEYWAY_WEB_URL", &h.url)
        .env("KEYWAY_WEB_TOKEN", TOKEN)
        .env("KEYWAY_WEB_LOCK_ADDR", &h.lock_address)
        .env("KEYWAY_WEB_SETUP_CODE", &h.setup_code)
        .env(
            "KEYWAY_WEB_LOCK_CONTROL",
            h.lock.control.unwrap().to_string(),
        )
        .env("KEYWAY_WEB_CLASS", CLASS)
        .env("KEYWAY_WEB_BUNDLE", &h.bundle)
        .env("KEYWAY_WEB_SHOTS", shots)
        .env("KEYWAY_WEB_FIGURES", figures.to_string())
        .env("CHROMIUM", chromium().unwrap())
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "the browser script failed:\n{stdout}\n{stderr}"
    );
    stdout
}
