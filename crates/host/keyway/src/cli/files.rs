//! File helpers every command shares: read naming the file, refuse an
//! oversized file before reading it, reject a key given twice, and write
//! an output atomically (temporary file, then rename).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use keyway_vendor::keys::{self, KeyId, hex};

/// Reads `path`; the error names the file.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Reads `path`, refusing (before reading) a file over `limit` bytes.
pub(crate) fn read_bounded(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>> {
    use std::io::Read as _;
    let f = fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut bytes = Vec::new();
    // A file that grows while it is read is cut at one byte over.
    f.take(limit + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > limit {
        bail!(
            "{}: {what} over {} MiB; refused",
            path.display(),
            limit >> 20
        );
    }
    Ok(bytes)
}

/// Reads `path`; the error names the file and `what` it should hold.
pub(crate) fn read_file(path: &Path, what: &str) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("{}: cannot read {what}", path.display()))
}

/// Loads keys, rejecting the same key given under two names.
pub(crate) fn load_unique<K>(
    paths: &[PathBuf],
    load: impl Fn(&Path) -> Result<K, keys::KeyError>,
    kid: impl Fn(&K) -> KeyId,
) -> Result<Vec<K>> {
    let mut loaded: Vec<(K, &Path)> = Vec::new();
    for p in paths {
        let k = load(p)?;
        if let Some((_, first)) = loaded.iter().find(|(o, _)| kid(o) == kid(&k)) {
            bail!(
                "{}: same key as {} (key id {}); each key may be given once",
                p.display(),
                first.display(),
                hex(&kid(&k))
            );
        }
        loaded.push((k, p));
    }
    Ok(loaded.into_iter().map(|(k, _)| k).collect())
}

/// Writes `bytes` to `path` via a temporary file and a rename, so a failed
/// run never leaves a truncated output behind.
pub(crate) fn write_output(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, bytes)
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = fs::remove_file(&tmp);
            anyhow::anyhow!("{}: cannot write: {e}", path.display())
        })
}

/// Writes `bytes` to `path` and says so on `out`: atomically
/// ([`write_output`]) as "wrote PATH (N bytes): `what`", or in place
/// (`keyway diff` and `keyway patch`) as "PATH: N bytes`what`".
pub(crate) fn write_said(
    path: &Path,
    bytes: &[u8],
    atomic: bool,
    out: &mut dyn std::io::Write,
    what: std::fmt::Arguments<'_>,
) -> Result<()> {
    let (p, n) = (path.display(), bytes.len());
    if atomic {
        write_output(path, bytes)?;
        writeln!(out, "wrote {p} ({n} bytes): {what}")?;
    } else {
        fs::write(path, bytes).with_context(|| format!("writing {p}"))?;
        writeln!(out, "{p}: {n} bytes{what}")?;
    }
    Ok(())
}
