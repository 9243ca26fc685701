//! The JSON API: authentication, the one error shape and its stable codes,
//! malformed requests (each changes nothing), the OpenAPI document against
//! the router, and the owner's flow end to end over scripted locks.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use keyway_hub::api::{self, Api, BundleRead, ReleasesIn, SourceError};
use keyway_hub::model::*;
use serde_json::{Value, json};
use support::*;
use tower::ServiceExt;

const TOKEN: &str = "s3cret-token-for-tests";

struct Bundles(Vec<u8>);

impl ReleasesIn for Bundles {
    fn read_bundle(&self, path: &Path) -> Result<BundleRead, SourceError> {
        match path.to_str() {
            Some("/media/usb") => Ok(BundleRead {
                incoming: vec![incoming("deadbolt-2/r3.suit", self.0.clone())],
                refused: vec![("deadbolt-2/evil.suit".into(), "hash mismatch".into())],
            }),
            Some("/media/corrupt") => Err(SourceError::Refused("root v2 does not verify".into())),
            _ => Err(SourceError::NotFound(path.display().to_string())),
        }
    }
}

fn app(w: &World) -> axum::Router {
    let env = envelope(&w.vendor.key, CLASS, 3, &[("CVE-2026-7777", "high")], None);
    api::router(Api {
        hub: w.hub.clone(),
        releases_in: Some(Arc::new(Bundles(env))),
        token: TOKEN.into(),
    })
}

async fn call(
    app: &axum::Router,
    method: Method,
    uri: &str,
    body: Option<&str>,
) -> (StatusCode, Value) {
    call_with(app, method, uri, body, Some(TOKEN)).await
}

/// A GET of `uri`, with the token.
async fn get(app: &axum::Router, uri: &str) -> (StatusCode, Value) {
    call(app, Method::GET, uri, None).await
}

/// A POST of the JSON `body` to `uri`, with the token.
async fn post(app: &axum::Router, uri: &str, body: &str) -> (StatusCode, Value) {
    call(app, Method::POST, uri, Some(body)).await
}

async fn call_with(
    app: &axum::Router,
    method: Method,
    uri: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let method_name = method.as_str().to_lowercase();
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let req = match body {
        Some(s) => b
            .header("content-type", "application/json")
            .body(Body::from(s.to_string())),
        None => b.body(Body::empty()),
    }
    .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    sample(method_name, uri, status, &v);
    (status, v)
}

/// Every JSON response the tests saw, written to
/// `target/tmp/openapi-samples.json`: `scripts/openapi-check.sh` validates
/// each against the document's schema for its route and status (the
/// document must describe what the API returns).
static SAMPLES: std::sync::Mutex<Vec<Value>> = std::sync::Mutex::new(Vec::new());

fn sample(method: String, uri: &str, status: StatusCode, body: &Value) {
    if body.is_null() {
        return;
    }
    let mut all = SAMPLES.lock().unwrap_or_else(|e| e.into_inner());
    all.push(json!({"method": method, "uri": uri, "status": status.as_u16(), "body": body}));
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("openapi-samples.json");
    let tmp = path.with_extension("json.tmp");
    if std::fs::write(&tmp, serde_json::to_vec(&*all).unwrap_or_default()).is_ok() {
        let _ = std::fs::rename(&tmp, &path);
    }
}

/// Every route of the API (its name, method and path), for lock `id`,
/// release `a…a` and log 0.
fn routes(id: &str) -> Vec<(&'static str, Method, String)> {
    api::ROUTES
        .iter()
        .map(|(m, p)| {
            let uri = p
                .replace("{id}", id)
                .replace("{digest}", &"a".repeat(64))
                .replace("{index}", "0");
            (
                *m,
                Method::from_bytes(m.to_uppercase().as_bytes()).unwrap(),
                uri,
            )
        })
        .collect()
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no error code>")
}

/// A new world, its API, and a [`snapshot`] of its store.
fn fresh() -> (World, axum::Router, String) {
    let w = World::new();
    let a = app(&w);
    let before = snapshot(&w);
    (w, a, before)
}

/// Everything the store holds, to check a refused request changed nothing.
fn snapshot(w: &World) -> String {
    let s = &w.store;
    let locks = s.locks().unwrap();
    let consents: Vec<Vec<Consent>> = locks.iter().map(|l| s.consents(l.id).unwrap()).collect();
    format!(
        "{:?}{:?}{:?}{:?}{:?}",
        locks,
        consents,
        s.releases(None).unwrap(),
        s.rollouts().unwrap(),
        s.models().unwrap()
    )
}

// ----- authentication ------------------------------------------------------------

#[tokio::test]
async fn health_needs_no_token() {
    let w = World::new();
    let (s, v) = call_with(&app(&w), Method::GET, "/api/health", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["status"], "ok");
}

#[tokio::test]
async fn missing_or_wrong_token_is_401_on_every_route() {
    let w = World::new();
    let a = app(&w);
    for (m, method, uri) in routes("1") {
        for token in [None, Some("wrong"), Some(""), Some("s3cret-token-for-test")] {
            let (s, v) = call_with(&a, method.clone(), &uri, Some("{}"), token).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{m} {uri} with {token:?}");
            assert_eq!(code(&v), "unauthorized");
        }
    }
    assert_eq!(
        w.store.events(0, 100).unwrap().len(),
        1,
        "only the model was added"
    );
}

// ----- the OpenAPI document ---------------------------------------------------------

#[test]
fn every_route_is_in_the_openapi_document_and_back() {
    let doc: Value = serde_json::from_str(api::OPENAPI).unwrap();
    assert_eq!(doc["openapi"].as_str().unwrap().get(..3), Some("3.1"));
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in ["get", "put", "post", "delete", "patch"] {
            if item.get(m).is_some() {
                documented.insert((m.to_string(), path.clone()));
            }
        }
    }
    let mut routed: BTreeSet<(String, String)> = api::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    routed.insert(("get".into(), "/api/health".into()));
    assert_eq!(documented, routed);
    // Every error code the API returns is listed in the document.
    let codes: Vec<String> = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    let src = include_str!("../src/api/mod.rs").to_string()
        + include_str!("../src/api/extract.rs")
        + include_str!("../src/api/locks.rs")
        + include_str!("../src/api/actions.rs")
        + include_str!("../src/engine/mod.rs");
    for c in codes.iter() {
        assert!(
            src.contains(&format!("\"{c}\"")),
            "documented code {c} is never returned"
        );
    }
    for line in src.lines() {
        for part in line.split('"').skip(1).step_by(2) {
            let looks_like_code = part.len() > 3
                && part.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                && part.contains('_');
            if looks_like_code && (line.contains("=> \"") || line.contains("StatusCode::")) {
                assert!(
                    codes.contains(&part.to_string()),
                    "code {part} is not documented ({line})"
                );
            }
        }
    }
}

#[tokio::test]
async fn every_route_is_routed() {
    let w = World::new();
    let a = app(&w);
    for (m, method, uri) in routes("999") {
        let (s, v) = call(&a, method, &uri, Some("{}")).await;
        assert!(
            !matches!(code(&v), "not_found" | "method_not_allowed")
                && s != StatusCode::INTERNAL_SERVER_ERROR,
            "{m} {uri}: {s} {v}"
        );
    }
}

#[tokio::test]
async fn the_document_is_served() {
    let w = World::new();
    let (s, v) = call(&app(&w), Method::GET, "/api/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["paths"]["/api/locks"].is_object());
}

// ----- malformed requests -----------------------------------------------------------

#[tokio::test]
async fn malformed_json_is_refused_and_changes_nothing() {
    let (w, a, before) = fresh();
    let (s, v) = post(&a, "/api/locks", "{\"name\": \"front\",").await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "malformed_json"));
    assert_eq!(snapshot(&w), before);
}

#[tokio::test]
async fn wrong_types_and_unknown_fields_are_invalid_body() {
    let (w, id) = World::with_lock();
    let a = app(&w);
    let before = snapshot(&w);
    let auto_install = format!("/api/locks/{id}/auto-install");
    for (method, uri, body) in [
        (
            Method::POST,
            "/api/locks",
            json!({"name": 5, "address": "a", "class": CLASS}),
        ),
        (
            Method::POST,
            "/api/locks",
            json!({"name": "front", "address": "a"}),
        ),
        (
            Method::POST,
            "/api/locks",
            json!({"name": "front", "address": "a", "class": CLASS, "device_key": [1, 2]}),
        ),
        (Method::POST, "/api/locks", json!(["front"])),
        (Method::PUT, &auto_install, json!({"enabled": "yes"})),
    ] {
        let (s, v) = call(&a, method, uri, Some(&body.to_string())).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
            "{uri} {body}"
        );
    }
    assert_eq!(snapshot(&w), before, "nothing was added or changed");
}

#[tokio::test]
async fn a_huge_body_is_refused() {
    let (w, a, before) = fresh();
    let name = "x".repeat(api::MAX_BODY_BYTES + 1);
    let body = json!({"name": name, "address": "a", "class": CLASS}).to_string();
    let (s, v) = post(&a, "/api/locks", &body).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
    );
    assert_eq!(snapshot(&w), before);
}

#[tokio::test]
async fn a_body_that_is_not_json_by_type_is_refused() {
    let w = World::new();
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/locks")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "text/plain")
        .body(Body::from("{}"))
        .unwrap();
    let resp = app(&w).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn unknown_lock_is_404_and_a_bad_id_is_400() {
    let w = World::new();
    let a = app(&w);
    let (s, v) = get(&a, "/api/locks/4242").await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "unknown_lock"));
    let (s, v) = call(&a, Method::DELETE, "/api/locks/4242", None).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "unknown_lock"));
    for bad in ["abc", "1.5", "99999999999999999999999", "-"] {
        let (s, v) = get(&a, &format!("/api/locks/{bad}")).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::BAD_REQUEST, "bad_path"),
            "{bad}"
        );
    }
    let (s, v) = get(&a, "/api/events?limit=lots").await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "bad_query"));
    let (s, v) = get(&a, "/api/nothing-here").await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (s, v) = call(&a, Method::PATCH, "/api/locks", None).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
}

#[tokio::test]
async fn a_bad_digest_is_400_and_changes_nothing() {
    let (w, id) = World::with_lock();
    let a = app(&w);
    let before = snapshot(&w);
    for d in ["abc", &"g".repeat(64), &"a".repeat(65)] {
        let (s, v) = get(&a, &format!("/api/releases/{d}")).await;
        assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "bad_digest"));
        let body = json!({"release": d, "decision": "accept"}).to_string();
        let (s, v) = post(&a, &format!("/api/locks/{id}/consents"), &body).await;
        assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "bad_digest"));
        let body = json!({"release": d, "wave_size": 1, "error_threshold_pct": 10}).to_string();
        let (s, v) = post(&a, "/api/rollouts", &body).await;
        assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "bad_digest"));
    }
    let (s, v) = get(&a, &format!("/api/releases/{}", "a".repeat(64))).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "unknown_release"));
    assert_eq!(snapshot(&w), before);
}

/// A UI bug that sends a consent for a release that is not one of the
/// lock's updates (an older one, another model's) is refused with a stable
/// code: it records nothing and sends nothing.
#[tokio::test]
async fn a_consent_for_a_release_that_does_not_apply_is_refused() {
    let w = World::new();
    let a = app(&w);
    let d = w.releases(&[(1, &[]), (2, &[])]);
    let id = w.paired_lock("a", 2);
    let before = snapshot(&w);
    for r in &d {
        let body = json!({"release": r.to_hex(), "decision": "accept"}).to_string();
        let (s, v) = post(&a, &format!("/api/locks/{id}/consents"), &body).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::CONFLICT, "release_not_applicable")
        );
    }
    let body = json!({"release": "ab".repeat(32), "decision": "accept"}).to_string();
    let (s, v) = post(&a, &format!("/api/locks/{id}/consents"), &body).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "unknown_release"));
    let body = json!({"release": d[0].to_hex(), "decision": "maybe"}).to_string();
    let (s, v) = post(&a, &format!("/api/locks/{id}/consents"), &body).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body")
    );
    // Nor can an install be asked for without an accepted consent.
    let body = json!({"release": d[1].to_hex()}).to_string();
    let (s, v) = post(&a, &format!("/api/locks/{id}/install"), &body).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "consent_required"));
    assert_eq!(snapshot(&w), before);
    assert!(w.fleet.get("a").uploads.is_empty());
}

// ----- the owner's flow ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_flow_import_add_pair_consent_and_progress() {
    let w = World::new();
    let a = app(&w);
    // A bundle from a USB stick.
    let (s, v) = post(&a, "/api/imports", r#"{"path":"/media/usb"}"#).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["imported"].as_array().unwrap().len(), 1);
    assert_eq!(v["refused_by_tuf"][0]["target"], "deadbolt-2/evil.suit");
    let (s, v) = post(&a, "/api/imports", r#"{"path":"/media/corrupt"}"#).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "bundle_refused")
    );
    let (s, v) = post(&a, "/api/imports", r#"{"path":"/nowhere"}"#).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "bundle_not_found"));
    // A lock.
    w.fleet.add("udp:192.168.1.20:1337", FakeLock::new(2));
    let body = json!({"name": "front door", "address": "udp:192.168.1.20:1337", "class": CLASS});
    let (s, v) = post(&a, "/api/locks", &body.to_string()).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["id"].as_i64().unwrap();
    let (s, v) = post(
        &a,
        &format!("/api/locks/{id}/pair"),
        r#"{"setup_code":"11111"}"#,
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "wrong_setup_code"));
    let (s, v) = post(
        &a,
        &format!("/api/locks/{id}/pair"),
        r#"{"setup_code":"86420"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["snapshot"]["version"], "1.2.0");
    // Its updates, with notes and CVEs.
    let (s, v) = get(&a, &format!("/api/locks/{id}/updates")).await;
    assert_eq!(s, StatusCode::OK);
    let up = &v["updates"][0];
    assert_eq!(up["version"], "1.3.0");
    assert_eq!(up["cves"][0]["id"], "CVE-2026-7777");
    assert_eq!(up["max_severity"], "high");
    assert_eq!(up["decision"], Value::Null);
    let release = up["release"].as_str().unwrap().to_string();
    // Consent: 202, the push runs in the background; progress shows it.
    let body = json!({"release": release, "decision": "accept"}).to_string();
    let (s, v) = post(&a, &format!("/api/locks/{id}/consents"), &body).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let mut phase = Value::Null;
    for _ in 0..200 {
        let (_, v) = get(&a, &format!("/api/locks/{id}/progress")).await;
        phase = v["progress"]["phase"].clone();
        if phase == "done" {
            assert_eq!(v["progress"]["done"], v["progress"]["total"]);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(phase, "done");
    let (_, v) = get(&a, &format!("/api/locks/{id}")).await;
    assert_eq!(v["snapshot"]["version"], "1.3.0");
    // Logs: fetch, list, download.
    let (s, _) = call(
        &a,
        Method::POST,
        &format!("/api/locks/{id}/logs/fetch"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = get(&a, &format!("/api/locks/{id}/logs")).await;
    assert_eq!(v["logs"][0]["last_seq"], 10);
    let req = Request::builder()
        .uri(format!("/api/locks/{id}/logs/0"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let resp = a.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&bytes[..], b"log 1..=10");
    let (s, v) = get(&a, &format!("/api/locks/{id}/logs/5")).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "unknown_log"));
    // Events and freshness.
    let (_, v) = get(&a, "/api/events?after=0&limit=500").await;
    let kinds: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"install_running"), "{kinds:?}");
    let (_, v) = get(&a, "/api/freshness").await;
    assert_eq!(v["status"]["state"], "never");
    assert_eq!(v["warning"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollouts_over_the_api() {
    let w = World::new();
    let a = app(&w);
    let d = w.releases(&[(3, &[])]);
    let ids: Vec<LockId> = (0..3).map(|i| w.paired_lock(&format!("l{i}"), 2)).collect();
    w.accept(ids[0], d[0]);
    let body =
        json!({"release": d[0].to_hex(), "wave_size": 2, "error_threshold_pct": 50}).to_string();
    let (s, v) = post(&a, "/api/rollouts", &body).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let rid = v["id"].as_i64().unwrap();
    let mut state = Value::Null;
    for _ in 0..200 {
        let (_, v) = get(&a, &format!("/api/rollouts/{rid}")).await;
        state = v["state"]["state"].clone();
        if state == "done" {
            assert_eq!(v["locks"][0][1]["outcome"], "updated");
            assert_eq!(v["locks"][1][1]["outcome"], "needs_consent");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(state, "done");
    let (_, v) = get(&a, "/api/rollouts").await;
    assert_eq!(v["rollouts"].as_array().unwrap().len(), 1);
    let (s, v) = get(&a, "/api/rollouts/77").await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "unknown_rollout"));
}

// ----- review 14: bad text is 400, the scheme is case-insensitive ----------------

#[tokio::test]
async fn a_nul_in_a_lock_name_is_400_invalid_text_and_changes_nothing() {
    let (w, a, before) = fresh();
    let (s, v) = post(
        &a,
        "/api/locks",
        r#"{"name": "front\u0000door", "address": "udp:127.0.0.1:1", "class": "deadbolt-2"}"#,
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_text"),
        "{v}"
    );
    assert_eq!(snapshot(&w), before);
}

#[test]
fn a_tuf_error_with_a_nul_is_kept_without_it() {
    let w = World::new();
    w.hub
        .record_tuf_error("http://repo.example/\0", "server said \0 nonsense")
        .expect("a NUL in a server's words must not fail the record");
    let f = w.hub.freshness().unwrap();
    assert_eq!(
        f.record.last_error.as_deref(),
        Some("server said \u{FFFD} nonsense")
    );
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let w = World::new();
    let a = app(&w);
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let req = Request::builder()
            .method(Method::GET)
            .uri("/api/locks")
            .header("authorization", format!("{scheme} {TOKEN}"))
            .body(Body::empty())
            .unwrap();
        let resp = a.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "scheme {scheme}");
    }
    for bad in [
        format!("Basic {TOKEN}"),
        format!("Bearer{TOKEN}"),
        format!("Bearerx {TOKEN}"),
    ] {
        let req = Request::builder()
            .method(Method::GET)
            .uri("/api/locks")
            .header("authorization", bad.clone())
            .body(Body::empty())
            .unwrap();
        let resp = a.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{bad}");
    }
}

// ----- review 14, item 12: resume a stopped rollout, sync now ----------------------

#[tokio::test]
async fn a_stopped_rollout_resumes_over_the_api() {
    let w = World::new();
    let a = app(&w);
    let (d, _) = w.consented_locks(2);
    w.fleet.with("l0", |l| l.script = Script::FailPush);
    let r = w.hub.create_rollout(d[0], 1, 0, None).unwrap();
    let r = w.hub.run_rollout(r.id).unwrap();
    assert!(matches!(r.state, RolloutState::Stopped { .. }));
    let (s, v) = get(&a, &format!("/api/rollouts/{}", r.id)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["locks"][0][1]["code"], "lock_refused", "{v}");
    let uri = format!("/api/rollouts/{}/resume", r.id);
    let (s, v) = call(&a, Method::POST, &uri, None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let mut state = Value::Null;
    for _ in 0..200 {
        let (_, v) = get(&a, &format!("/api/rollouts/{}", r.id)).await;
        state = v["state"]["state"].clone();
        if state == "done" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(state, "done");
    assert_eq!(w.fleet.get("l1").seq, 3);
    let (s, v) = call(&a, Method::POST, &uri, None).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_value")
    );
    let (s, v) = call(&a, Method::POST, "/api/rollouts/77/resume", None).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "unknown_rollout"));
}

/// A sync source that hands the hub one envelope, or fails as told.
struct Repo(Vec<u8>, std::sync::Mutex<Option<&'static str>>);

impl keyway_hub::engine::SyncNow for Repo {
    fn sync_now(
        &self,
        hub: &keyway_hub::engine::Hub,
    ) -> Result<keyway_hub::engine::IngestReport, keyway_hub::engine::SyncError> {
        use keyway_hub::engine::SyncError;
        match *self.1.lock().unwrap() {
            Some("down") => Err(SyncError::Unreachable("connection refused".into())),
            Some("bad") => Err(SyncError::Refused("timestamp version went back".into())),
            _ => Ok(hub.ingest(vec![incoming("deadbolt-2/r4.suit", self.0.clone())])?),
        }
    }
}

#[tokio::test]
async fn sync_now_takes_releases_in_or_says_why_not() {
    let w = World::new();
    let a = app(&w);
    let (s, v) = call(&a, Method::POST, "/api/sync", None).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::NOT_IMPLEMENTED, "sync_unavailable")
    );
    let repo = Arc::new(Repo(
        envelope(&w.vendor.key, CLASS, 4, &[], None),
        std::sync::Mutex::new(Some("down")),
    ));
    w.hub.set_sync(repo.clone());
    let (s, v) = call(&a, Method::POST, "/api/sync", None).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::GATEWAY_TIMEOUT, "repository_unreachable")
    );
    *repo.1.lock().unwrap() = Some("bad");
    let (s, v) = call(&a, Method::POST, "/api/sync", None).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_GATEWAY, "repository_refused")
    );
    *repo.1.lock().unwrap() = None;
    let (s, v) = call(&a, Method::POST, "/api/sync", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["imported"][0]["version"], "1.4.0", "{v}");
}
