//! The web UI's security: login and sessions, CSRF on every POST, the
//! Origin / Sec-Fetch-Site checks, the Host check against DNS rebinding,
//! vendor notes rendered inert, the security headers; and that the UI's
//! actions are the API's (same consent, same error codes).
//! (The click-through in a real browser is `crates/host/keyway/tests/hub_web.rs`.)

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use keyway_hub::api::Api;
use keyway_hub::model::*;
use keyway_hub::web::{self, WebOptions};
use keyway_vendor::encode::{Cve, EnvelopeBuilder};
use support::*;
use tower::ServiceExt;

const TOKEN: &str = "web-test-token-0123456789abcdef";

fn app_with(w: &World, ttl: Duration) -> axum::Router {
    web::app(
        Api {
            hub: w.hub.clone(),
            releases_in: None,
            token: TOKEN.into(),
        },
        WebOptions {
            session_ttl: ttl,
            allowed_hosts: vec![],
        },
    )
}

fn app(w: &World) -> axum::Router {
    app_with(w, Duration::from_secs(3600))
}

/// The UI over `w`, a session logged in to it: its cookie and CSRF token.
async fn logged_in(w: &World) -> (axum::Router, String, String) {
    let app = app(w);
    let (cookie, csrf) = login(&app).await;
    (app, cookie, csrf)
}

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

async fn send(app: &axum::Router, req: Request<Body>) -> Resp {
    let r = app.clone().oneshot(req).await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let body =
        String::from_utf8_lossy(&r.into_body().collect().await.unwrap().to_bytes()).into_owned();
    Resp {
        status,
        headers,
        body,
    }
}

async fn get(app: &axum::Router, uri: &str, cookie: Option<&str>) -> Resp {
    let mut b = Request::get(uri).header(header::HOST, "127.0.0.1:8080");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    send(app, b.body(Body::empty()).unwrap()).await
}

async fn post(
    app: &axum::Router,
    uri: &str,
    cookie: Option<&str>,
    form: &[(&str, &str)],
    extra: &[(&str, &str)],
) -> Resp {
    let mut b = Request::post(uri)
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    let body = serde_urlencoded::to_string(form).unwrap();
    send(app, b.body(Body::from(body)).unwrap()).await
}

/// Posts the consent form for `release` on lock `id` (`decision`:
/// accept or decline) with the session `cookie` and `csrf` token.
async fn consent(
    app: &axum::Router,
    id: LockId,
    cookie: &str,
    csrf: &str,
    release: &str,
    decision: &str,
) -> Resp {
    let form = [("csrf", csrf), ("release", release), ("decision", decision)];
    post(
        app,
        &format!("/locks/{id}/consent"),
        Some(cookie),
        &form,
        &[],
    )
    .await
}

/// `GET /login` with the `Host` header `host`.
async fn login_page_for(app: &axum::Router, host: &str) -> Resp {
    let req = Request::get("/login").header(header::HOST, host);
    send(app, req.body(Body::empty()).unwrap()).await
}

/// Logs in: the session cookie and the page's CSRF token.
async fn login(app: &axum::Router) -> (String, String) {
    let r = post(app, "/login", None, &[("token", TOKEN), ("next", "/")], &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let set = r.headers[header::SET_COOKIE].to_str().unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set} lacks {attr}");
    }
    let cookie = set.split(';').next().unwrap().to_string();
    let id = cookie.strip_prefix("keyway_session=").unwrap();
    assert_eq!(id.len(), 64, "a 256-bit session id");
    let page = get(app, "/", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    (cookie, csrf_of(&page.body))
}

fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    page[at..at + 64].to_string()
}

/// Release 1.2.0 (a high fix) taken in, offered to a lock running 1.1.0.
fn offered(w: &World) -> (Digest, LockId) {
    let r = w.releases(&[(2, &[("CVE-2026-1111", "high")])])[0];
    (r, w.paired_lock("udp:10.0.0.1:1", 1))
}

#[tokio::test]
async fn no_session_redirects_to_login() {
    let w = World::new();
    let app = app(&w);
    for path in ["/", "/locks/1", "/audit", "/import", "/releases"] {
        let r = get(&app, path, None).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}");
        let loc = r.headers[header::LOCATION].to_str().unwrap();
        assert!(loc.starts_with("/login?next="), "{path} -> {loc}");
    }
    // A made-up session id is no session.
    let r = get(
        &app,
        "/",
        Some(&format!("keyway_session={}", "ab".repeat(32))),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // A POST without a session changes nothing.
    let r = post(
        &app,
        "/locks",
        None,
        &[("name", "x"), ("address", "a"), ("class", CLASS)],
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(w.hub.locks().unwrap().is_empty());
    // The login page itself and the stylesheet need none.
    assert_eq!(get(&app, "/login", None).await.status, StatusCode::OK);
    assert_eq!(
        get(&app, "/static/style.css", None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn wrong_token_does_not_log_in_and_next_is_local_only() {
    let w = World::new();
    let app = app(&w);
    let r = post(&app, "/login", None, &[("token", "nope")], &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.headers.get(header::SET_COOKIE).is_none());
    let r = post(
        &app,
        "/login",
        None,
        &[("token", TOKEN), ("next", "//evil.example/")],
        &[],
    )
    .await;
    assert_eq!(r.headers[header::LOCATION], "/", "an open redirect");
}

#[tokio::test]
async fn post_without_csrf_token_is_refused_and_changes_nothing() {
    let w = World::new();
    let app = app(&w);
    let (cookie, _) = login(&app).await;
    let r = post(
        &app,
        "/locks",
        Some(&cookie),
        &[
            ("name", "Front"),
            ("address", "udp:127.0.0.1:9"),
            ("class", CLASS),
        ],
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body.contains("csrf_failed"));
    assert!(w.hub.locks().unwrap().is_empty(), "nothing added");
}

#[tokio::test]
async fn post_with_wrong_csrf_token_is_refused_and_changes_nothing() {
    let w = World::new();
    let (r1, id) = offered(&w);
    let (app, cookie, csrf) = logged_in(&w).await;
    // Another session's token is wrong for this one.
    let (_, other) = login(&app).await;
    assert_ne!(csrf, other);
    for bad in [other.as_str(), "", &"0".repeat(64), &csrf[..63]] {
        let r = consent(&app, id, &cookie, bad, &r1.to_hex(), "accept").await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{bad:?}");
    }
    assert!(
        w.store.consents(id).unwrap().is_empty(),
        "no consent recorded"
    );
    // Logout needs the token too.
    let r = post(&app, "/logout", Some(&cookie), &[("csrf", &other)], &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        get(&app, "/", Some(&cookie)).await.status,
        StatusCode::OK,
        "still logged in"
    );
    // The right token goes through, to the same engine call as the API's.
    let r = consent(&app, id, &cookie, &csrf, &r1.to_hex(), "decline").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let c = w.store.consents(id).unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(
        (c[0].decision, c[0].source.clone()),
        (Decision::Decline, ConsentSource::Owner)
    );
}

#[tokio::test]
async fn cross_site_origin_is_refused_even_with_the_csrf_token() {
    let w = World::new();
    let (app, cookie, csrf) = logged_in(&w).await;
    let form = [
        ("csrf", csrf.as_str()),
        ("name", "Front"),
        ("address", "udp:127.0.0.1:9"),
        ("class", CLASS),
    ];
    for extra in [
        vec![("origin", "http://evil.example")],
        vec![("origin", "null")],
        vec![("sec-fetch-site", "cross-site")],
        vec![("sec-fetch-site", "same-site")],
    ] {
        let r = post(&app, "/locks", Some(&cookie), &form, &extra).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{extra:?}");
        assert!(r.body.contains("cross_site"));
    }
    // A cross-site login is refused too (login CSRF).
    let r = post(
        &app,
        "/login",
        None,
        &[("token", TOKEN)],
        &[("origin", "http://evil.example")],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(w.hub.locks().unwrap().is_empty(), "nothing added");
    // Same origin, as a browser sends it, goes through.
    let r = post(
        &app,
        "/locks",
        Some(&cookie),
        &form,
        &[
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(w.hub.locks().unwrap().len(), 1);
}

#[tokio::test]
async fn foreign_host_header_is_refused_against_dns_rebinding() {
    let w = World::new();
    let app = app(&w);
    for host in [
        "evil.example",
        "evil.example:8080",
        "127.0.0.1.evil.example",
        "10.0.0.5:8080",
    ] {
        let r = login_page_for(&app, host).await;
        assert_eq!(r.status, StatusCode::MISDIRECTED_REQUEST, "{host}");
    }
    for host in ["localhost:8080", "127.0.0.1", "[::1]:8080", "127.0.0.2:1"] {
        let r = login_page_for(&app, host).await;
        assert_eq!(r.status, StatusCode::OK, "{host}");
    }
}

#[tokio::test]
async fn notes_with_script_render_inert() {
    let w = World::new();
    let hostile = "<script>alert(1)</script><img src=x onerror=alert(2)>\n[x](javascript:alert(3)) \"quoted\" 'single'";
    let env = EnvelopeBuilder {
        sequence: 2,
        version: "1.2.0".parse().unwrap(),
        vendor_domain: DOMAIN.into(),
        class_name: CLASS.into(),
        notes: Some(hostile.into()),
        cves: vec!["CVE-2026-4242:critical".parse::<Cve>().unwrap()],
        payload: image(2),
        keys: vec![w.vendor.key.clone()],
        ..Default::default()
    }
    .build()
    .unwrap()
    .envelope;
    let rep = w.hub.ingest(vec![incoming("r2.suit", env)]).unwrap();
    assert!(rep.refused.is_empty(), "{:?}", rep.refused);
    let digest = rep.imported[0].digest;
    let id = w.paired_lock("udp:10.0.0.1:1", 1);
    let app = app(&w);
    let (cookie, _) = login(&app).await;
    for page in [format!("/releases/{digest}"), format!("/locks/{id}")] {
        let r = get(&app, &page, Some(&cookie)).await;
        assert_eq!(r.status, StatusCode::OK, "{page}");
        assert!(
            !r.body.contains("<script"),
            "{page}: a script tag reached the page"
        );
        assert!(!r.body.contains("<img"), "{page}");
        assert!(!r.body.contains("href=\"javascript"), "{page}");
        assert!(
            r.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{page}: notes shown escaped"
        );
        assert!(r.body.contains("CVE-2026-4242"), "{page}");
        let csp = r.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && !csp.contains("script-src"),
            "{csp}"
        );
    }
    // A lock named with markup is escaped on the list too.
    w.hub
        .add_lock(&NewLock {
            name: "<b onmouseover=x>Back</b>".into(),
            address: "udp:10.0.0.2:1".into(),
            class: CLASS.into(),
        })
        .unwrap();
    let r = get(&app, "/", Some(&cookie)).await;
    assert!(!r.body.contains("<b onmouseover"));
    assert!(r.body.contains("&lt;b onmouseover=x&gt;Back&lt;/b&gt;"));
}

#[tokio::test]
async fn security_headers_on_every_page() {
    let w = World::new();
    let app = app(&w);
    let (cookie, _) = login(&app).await;
    for (path, c) in [
        ("/login", None),
        ("/", Some(cookie.as_str())),
        ("/audit", Some(cookie.as_str())),
        ("/locks/999", Some(cookie.as_str())),
    ] {
        let r = get(&app, path, c).await;
        assert_eq!(r.headers[header::X_FRAME_OPTIONS], "DENY", "{path}");
        assert_eq!(
            r.headers[header::X_CONTENT_TYPE_OPTIONS],
            "nosniff",
            "{path}"
        );
        assert_eq!(r.headers[header::REFERRER_POLICY], "same-origin", "{path}");
        assert!(
            r.headers[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'"),
            "{path}"
        );
    }
    // An unknown lock: the API's code, as a page.
    let r = get(&app, "/locks/999", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.contains("unknown_lock"));
}

#[tokio::test]
async fn session_expiry_logs_out() {
    let w = World::new();
    let app = app_with(&w, Duration::from_millis(300));
    let (cookie, csrf) = login(&app).await;
    assert_eq!(get(&app, "/", Some(&cookie)).await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let r = get(&app, "/", Some(&cookie)).await;
    assert_eq!(
        r.status,
        StatusCode::SEE_OTHER,
        "an expired session is no session"
    );
    let r = post(
        &app,
        "/locks",
        Some(&cookie),
        &[
            ("csrf", &csrf),
            ("name", "x"),
            ("address", "a"),
            ("class", CLASS),
        ],
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(w.hub.locks().unwrap().is_empty());
}

#[tokio::test]
async fn logout_ends_the_session() {
    let w = World::new();
    let (app, cookie, csrf) = logged_in(&w).await;
    let r = post(&app, "/logout", Some(&cookie), &[("csrf", &csrf)], &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        r.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(
        get(&app, "/", Some(&cookie)).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn consent_in_the_ui_is_the_apis_consent_and_pushes() {
    let w = World::new();
    let (r2, id) = offered(&w);
    let (app, cookie, csrf) = logged_in(&w).await;
    let page = get(&app, &format!("/locks/{id}"), Some(&cookie)).await;
    assert!(page.body.contains("Install 1.2.0"), "{}", page.body);
    let r = consent(&app, id, &cookie, &csrf, &r2.to_hex(), "accept").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let c = w.store.consents(id).unwrap();
    assert_eq!(
        (c[0].decision, c[0].source.clone()),
        (Decision::Accept, ConsentSource::Owner)
    );
    // The push runs in the background; the page shows it, then the new version.
    let t = std::time::Instant::now();
    loop {
        if w.hub
            .progress_of(id)
            .is_some_and(|p| p.phase == keyway_hub::engine::Phase::Done)
        {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{:?}",
            w.hub.progress_of(id)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let page = get(&app, &format!("/locks/{id}"), Some(&cookie)).await;
    assert!(page.body.contains("Update done"), "{}", page.body);
    // A refused action shows the API's code: install without a consent.
    let other = w.releases(&[(3, &[])])[0];
    let r = post(
        &app,
        &format!("/locks/{id}/install"),
        Some(&cookie),
        &[("csrf", &csrf), ("release", &other.to_hex())],
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.body.contains("consent_required"));
    let _ = Arc::strong_count(&w.hub);
}

#[tokio::test]
async fn stale_view_shows_the_banner_on_every_page() {
    let w = World::new();
    let app = app(&w);
    let (cookie, _) = login(&app).await;
    w.hub
        .record_tuf_fresh("http://127.0.0.1:8700", 7, T0 + 30 * 86_400)
        .unwrap();
    let pages = ["/", "/audit", "/import", "/releases"];
    for p in pages {
        let r = get(&app, p, Some(&cookie)).await;
        assert!(!r.body.contains("banner stale"), "{p}: fresh, no banner");
    }
    w.clock.advance(3 * 86_400);
    for p in pages {
        let r = get(&app, p, Some(&cookie)).await;
        assert_eq!(r.status, StatusCode::OK, "{p}");
        assert!(r.body.contains("banner stale"), "{p}: stale, a banner");
        assert!(
            r.body.contains("still install"),
            "{p}: staleness never blocks"
        );
    }
}
