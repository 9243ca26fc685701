//! Page weight and time to first render of the hub's web UI in headless
//! Chromium: starts the browser test's house (one simulated lock, a hub
//! serving the API and the UI on 127.0.0.1), clicks through pairing, an
//! update, an import and an audit-log fetch, then loads each main page
//! N times with the cache disabled and prints the medians: bytes
//! transferred (CDP `Network.loadingFinished` encodedDataLength, headers
//! included) and first-contentful-paint (`performance.getEntriesByType('paint')`).
//!
//! `cargo run --release -p keyway --example hub_web_figures -- [N=9]`
//! (needs scripts/chromium.sh and `npm ci` in crates/host/keyway-hub/web-tests).

#[path = "../tests/web_house/mod.rs"]
mod web_house;

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(9);
    assert!(
        web_house::chromium().is_some()
            && web_house::driver_dir()
                .join("node_modules/playwright-core")
                .exists(),
        "needs Debian's chromium (scripts/chromium.sh) and `npm ci` in crates/host/keyway-hub/web-tests"
    );
    let h = web_house::House::start();
    let shots = tempfile::tempdir().unwrap();
    let out = web_house::browse(&h, shots.path(), n);
    for line in out
        .lines()
        .filter(|l| l.starts_with('|') || l.starts_with("figures"))
    {
        println!("{line}");
    }
    h.lock.power_off();
}
