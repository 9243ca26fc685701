//! The time from a lock state change the hub has learned to Home
//! Assistant's state, against a real Home Assistant and Mosquitto.
//!
//! ```text
//! eval "$(scripts/mosquitto.sh)"; eval "$(scripts/home-assistant.sh)"
//! cargo run -p keyway-hub --example mqtt_ha_latency -- [CHANGES] [POLL_MS]
//! ```
//!
//! A scripted lock's bolt flips; the hub reads it (`Hub::refresh`, as its
//! tick would); the clock starts when `refresh` returns and stops when
//! `GET /api/states/lock.…` (polled every 10 ms) shows the new state.
//! Prints the median, min and max over CHANGES (default 15) changes with
//! the bridge polling the hub every POLL_MS (default 250, the default).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use keyway_hub::model::{Bolt, LockRecord};
use keyway_hub::mqtt::{self, MqttOptions};
use serde_json::Value;
use support::World;

async fn get(http: &reqwest::Client, url: &str, token: &str) -> Value {
    let r = http
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("Home Assistant answers");
    serde_json::from_str(&r.text().await.unwrap()).unwrap_or(Value::Null)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(15);
    let poll: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(250);
    let env = |k: &str| {
        std::env::var(k).unwrap_or_else(|_| {
            eprintln!("{k} is not set: eval \"$(scripts/mosquitto.sh)\"; eval \"$(scripts/home-assistant.sh)\"");
            std::process::exit(2)
        })
    };
    let (mqtt_url, ha, token) = (
        env("KEYWAY_TEST_MQTT"),
        env("KEYWAY_HA_URL"),
        env("KEYWAY_HA_TOKEN"),
    );
    let w = World::new();
    w.releases(&[(1, &[]), (2, &[])]);
    let id = w.paired_lock("udp:lock-a", 1);
    let base = format!("kwbench{}", std::process::id());
    let name = format!("Bench {base}");
    w.store
        .save_lock(&LockRecord {
            name: name.clone(),
            ..w.hub.lock(id).unwrap()
        })
        .unwrap();
    let mut o = MqttOptions::from_url(&mqtt_url).unwrap();
    o.base = base.clone();
    o.client_id = format!("{base}-hub");
    o.poll = Duration::from_millis(poll);
    let bridge = mqtt::spawn(w.hub.clone(), o);
    let http = reqwest::Client::new();
    let end = Instant::now() + Duration::from_secs(30);
    let entity = loop {
        let states = get(&http, &format!("{ha}/api/states"), &token).await;
        let found = states.as_array().and_then(|a| {
            a.iter().find(|s| {
                s["entity_id"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("lock."))
                    && s["attributes"]["friendly_name"]
                        .as_str()
                        .is_some_and(|f| f.starts_with(&name))
            })
        });
        if let Some(s) = found {
            break s["entity_id"].as_str().unwrap().to_string();
        }
        assert!(
            Instant::now() < end,
            "Home Assistant never showed the lock entity"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut ms = Vec::new();
    for i in 0..n {
        let (bolt, want) = if i % 2 == 0 {
            (Bolt::Locked, "locked")
        } else {
            (Bolt::Unlocked, "unlocked")
        };
        w.fleet.with("udp:lock-a", |l| l.bolt = bolt);
        let h = w.hub.clone();
        tokio::task::spawn_blocking(move || h.refresh(id).unwrap())
            .await
            .unwrap();
        let t = Instant::now();
        loop {
            let s = get(&http, &format!("{ha}/api/states/{entity}"), &token).await;
            if s["state"] == want {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "HA never showed {want}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        // Desynchronise from the bridge's poll so the samples spread over it.
        tokio::time::sleep(Duration::from_millis(37 * (i as u64 % 7))).await;
    }
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "lock state change -> Home Assistant state ({entity}): median {:.0} ms, min {:.0} ms, max {:.0} ms over {n} changes; bridge poll {poll} ms",
        ms[ms.len() / 2],
        ms[0],
        ms[ms.len() - 1]
    );
    bridge.abort();
}
