//! The hub engine on an in-memory store, reaching real locks over UDP:
//! shared by tests/hub_link.rs and the web house (tests/hub_web.rs,
//! examples/hub_web_figures.rs), which includes this file by its path.

use std::sync::Arc;
use std::time::Duration;

use keyway::hub::link::{HubIdentity, UdpConnector};
use keyway_hub::engine::{Hub, HubConfig, SystemClock};
use keyway_hub::model::ModelAnchors;
use keyway_hub::store::SqliteStore;
use keyway_testkit::release::{CLASS, VENDOR};

/// The hub as the owner runs it (`keyway_hub::engine::Hub` on an
/// in-memory SQLite store, the system clock): it reaches locks as
/// `identity` over UDP (2 s a try, three tries) and trusts `trust_pem`
/// (one signature) for the testkit's vendor and class.
pub fn udp_hub(identity: HubIdentity, trust_pem: String) -> Hub {
    let connector = UdpConnector::new(identity).with_retry(Duration::from_millis(2000), 3);
    let hub = Hub::new(
        Arc::new(SqliteStore::open_in_memory().unwrap()),
        Arc::new(connector),
        Arc::new(SystemClock),
        HubConfig::default(),
    );
    hub.put_model(&ModelAnchors {
        class: CLASS.into(),
        vendor_domain: VENDOR.into(),
        trust_pems: vec![trust_pem],
        threshold: 1,
    })
    .unwrap();
    hub
}
