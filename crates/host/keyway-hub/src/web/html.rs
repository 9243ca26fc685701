//! HTML building blocks: escaping (every value that reaches a page goes
//! through [`esc`]), times, and the page frame.

use std::fmt::Write as _;

use crate::engine::FreshnessReport;
use crate::engine::decide::FreshnessState;
use crate::model::{CveFix, Severity, UnixSecs};

/// Escapes text for an HTML text node or a quoted attribute value.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Release notes: the vendor's Markdown, shown as preformatted text
/// (escaped; no Markdown is interpreted, so no vendor HTML, link or
/// image reaches the page).
pub fn notes(s: &str) -> String {
    format!("<pre class=\"notes\">{}</pre>", esc(s))
}

/// `2026-12-07 02:30:00 UTC`.
pub fn time(t: UnixSecs) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `3 min ago`.
pub fn ago(t: UnixSecs, now: UnixSecs) -> String {
    let d = (now - t).max(0);
    match d {
        0..60 => format!("{d} s ago"),
        60..3600 => format!("{} min ago", d / 60),
        3600..172_800 => format!("{} h ago", d / 3600),
        _ => format!("{} days ago", d / 86_400),
    }
}

/// A severity badge.
pub fn severity(s: Severity) -> String {
    let (class, word) = match s {
        Severity::Low => ("low", "low"),
        Severity::Medium => ("medium", "medium"),
        Severity::High => ("high", "high"),
        Severity::Critical => ("critical", "critical"),
    };
    format!("<span class=\"sev {class}\">{word}</span>")
}

/// Appends `heading` (markup, e.g. `<h3>Refused</h3>`) and a `<ul>` with
/// one `<li>` per item. Items are written as given, so they must already
/// be markup: escape each value with [`esc`] (or the caller's own rules).
pub fn list<T: std::fmt::Display>(
    out: &mut String,
    heading: &str,
    items: impl IntoIterator<Item = T>,
) {
    out.push_str(heading);
    out.push_str("<ul>");
    for item in items {
        let _ = write!(out, "<li>{item}</li>");
    }
    out.push_str("</ul>");
}

/// A release's CVEs as a list, each with its severity badge.
pub fn cve_list(cves: &[CveFix]) -> String {
    let mut b = String::from("<ul class=\"cves\">");
    for cve in cves {
        let _ = write!(
            b,
            "<li><code>{}</code> {}</li>",
            esc(&cve.id),
            severity(cve.severity)
        );
    }
    b.push_str("</ul>");
    b
}

/// The freshness banner: shown on every page while the hub's view of its
/// vendor repository is stale, expired, or was never fresh.
pub fn freshness_banner(f: &FreshnessReport, now: UnixSecs) -> String {
    if !f.warning {
        return String::new();
    }
    let what = match &f.status {
        FreshnessState::Never => {
            "The hub has never seen a fresh timestamp from its vendor repository.".to_string()
        }
        FreshnessState::Stale { age_secs } => format!(
            "The hub's view of the vendor's releases is stale: last fresh {}.",
            ago(now - age_secs, now)
        ),
        FreshnessState::Expired { expired_at } => format!(
            "The vendor repository's timestamp expired at {}: an outage, or someone withholding updates.",
            time(*expired_at)
        ),
        FreshnessState::Fresh { .. } => "The hub's view is stale.".to_string(),
    };
    let mut o = format!(
        "<div class=\"banner stale\" role=\"alert\"><strong>Stale.</strong> {}",
        esc(&what)
    );
    if let Some(e) = &f.record.last_error {
        let _ = write!(o, " Last sync: {}", esc(e));
    }
    o.push_str(
        " Updates the hub already holds still install (each lock refuses anything older than it runs).</div>",
    );
    o
}

/// The page frame: head, navigation (with the logout form and its CSRF
/// token), the freshness banner, then `body`. `refresh` adds a
/// `<meta http-equiv=refresh>` (live progress without JavaScript).
pub fn page(
    title: &str,
    csrf: Option<&str>,
    banner: &str,
    refresh: Option<u32>,
    body: &str,
) -> String {
    let mut o = String::with_capacity(body.len() + 1024);
    o.push_str("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    o.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    if let Some(s) = refresh {
        let _ = write!(o, "<meta http-equiv=\"refresh\" content=\"{s}\">");
    }
    let _ = write!(
        o,
        "<title>{} · Keyway hub</title><link rel=\"stylesheet\" href=\"/static/style.css\"></head><body>",
        esc(title)
    );
    o.push_str("<header><a class=\"brand\" href=\"/\">Keyway hub</a>");
    if let Some(c) = csrf {
        let _ = write!(
            o,
            "<nav><a href=\"/\">Locks</a><a href=\"/releases\">Releases</a><a href=\"/audit\">Audit log</a><a href=\"/import\">Import</a>\
             <form method=\"post\" action=\"/logout\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\" class=\"link\">Log out</button></form></nav>",
            esc(c)
        );
    }
    o.push_str("</header><main>");
    o.push_str(banner);
    o.push_str(body);
    o.push_str("</main></body></html>\n");
    o
}

/// A hidden CSRF field.
pub fn csrf_field(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(csrf)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            esc("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }

    #[test]
    fn list_writes_heading_then_items_as_given() {
        let mut o = String::from("x");
        list(&mut o, "<h3>T</h3>", ["a", &esc("<b>")]);
        assert_eq!(o, "x<h3>T</h3><ul><li>a</li><li>&lt;b&gt;</li></ul>");
        list(&mut o, "", Vec::<String>::new());
        assert!(o.ends_with("</ul><ul></ul>"), "{o}");
    }

    #[test]
    fn times_render_in_utc() {
        assert_eq!(time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(time(1_796_610_600), "2026-12-07 02:30:00 UTC");
    }
}
