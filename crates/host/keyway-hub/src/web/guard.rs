//! The guard every request passes before a handler runs: the `Host`
//! check (DNS rebinding), the session cookie, the origin and CSRF checks
//! on every POST, and the security headers on every answer.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use subtle::ConstantTimeEq;

use super::{COOKIE, CSP, MAX_FORM_BYTES, Sess, Web, WebOptions, bad};

pub(super) fn host_allowed(headers: &HeaderMap, opts: &WebOptions) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let host = host.to_ascii_lowercase();
    if opts
        .allowed_hosts
        .iter()
        .any(|a| a.eq_ignore_ascii_case(&host))
    {
        return true;
    }
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((n, tail)) if tail.is_empty() || tail.starts_with(':') => format!("[{n}]"),
            _ => return false,
        }
    } else {
        host.split(':').next().unwrap_or("").to_string()
    };
    name == "localhost"
        || name == "[::1]"
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback())
        || opts
            .allowed_hosts
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&name))
}

/// Whether a POST comes from this origin, as far as the browser says.
pub(super) fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        let ok = matches!(site.to_str(), Ok("same-origin") | Ok("none"));
        if !ok {
            return false;
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
            return false;
        };
        let ok = origin.eq_ignore_ascii_case(&format!("http://{host}"))
            || origin.eq_ignore_ascii_case(&format!("https://{host}"));
        if !ok {
            return false;
        }
    }
    true
}

pub(super) fn cookie_session(headers: &HeaderMap) -> Option<String> {
    for v in headers.get_all(header::COOKIE) {
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(';') {
            if let Some(val) = part
                .trim()
                .strip_prefix(COOKIE)
                .and_then(|r| r.strip_prefix('='))
                && val.len() == 64
                && val.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Some(val.to_string());
            }
        }
    }
    None
}

/// `Referrer-Policy: same-origin`, not `no-referrer`: under `no-referrer`
/// Chromium sends `Origin: null` on the UI's own form POSTs, which the
/// origin check must refuse (found by the browser test).
pub(super) fn security_headers(r: &mut Response) {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
}

pub(super) fn form_field(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded_pairs(body)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

pub(super) fn form_urlencoded_pairs(body: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body).unwrap_or_default()
}

/// Host check, session, CSRF and origin checks, security headers.
pub(super) async fn guard(State(w): State<Web>, req: Request, next: Next) -> Response {
    let mut r = guarded(w, req, next).await;
    security_headers(&mut r);
    r
}

pub(super) async fn guarded(w: Web, req: Request, next: Next) -> Response {
    if !host_allowed(req.headers(), &w.opts) {
        return bad(
            StatusCode::MISDIRECTED_REQUEST,
            "host_not_allowed",
            "this hub answers only to its own address (loopback or its listen address): open it by that address",
        )
        .into_response();
    }
    let path = req.uri().path().to_string();
    if path.starts_with("/static/") {
        return next.run(req).await;
    }
    let post = req.method() == Method::POST;
    if post && !same_origin(req.headers()) {
        return bad(
            StatusCode::FORBIDDEN,
            "cross_site",
            "a form from another site was refused: use the hub's own pages",
        )
        .into_response();
    }
    if path == "/login" {
        return next.run(req).await;
    }
    let session = cookie_session(req.headers()).and_then(|id| w.sessions.get(&id).map(|s| (id, s)));
    let Some((id, s)) = session else {
        if post {
            return bad(
                StatusCode::UNAUTHORIZED,
                "login_required",
                "your session ended: log in again",
            )
            .into_response();
        }
        let next_path = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let q = serde_urlencoded::to_string([("next", next_path)]).unwrap_or_default();
        return Redirect::to(&format!("/login?{q}")).into_response();
    };
    let (parts, body) = req.into_parts();
    let req = if post {
        let bytes = match axum::body::to_bytes(body, MAX_FORM_BYTES).await {
            Ok(b) => b,
            Err(_) => {
                return bad(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("the form is larger than {MAX_FORM_BYTES} bytes"),
                )
                .into_response();
            }
        };
        let given = form_field(&bytes, "csrf").unwrap_or_default();
        let ok: bool = given.as_bytes().ct_eq(s.csrf.as_bytes()).into();
        if !ok {
            return bad(
                StatusCode::FORBIDDEN,
                "csrf_failed",
                "the form's security token is missing or wrong (an old page, or a forged form): reload the page and try again",
            )
            .into_response();
        }
        Request::from_parts(parts, Body::from(bytes))
    } else {
        Request::from_parts(parts, body)
    };
    let mut req = req;
    req.extensions_mut().insert(Sess { id, csrf: s.csrf });
    next.run(req).await
}
