//! The hub's data directory: the API token (made 0600, refused when
//! others may read it), the first line that announces address and token,
//! the store (SQLite in the directory or PostgreSQL) and its errors in
//! words, the TUF mirror.

use super::*;

/// The API token's file in the hub's directory.
pub const TOKEN_FILE: &str = "api-token";

/// Reads the hub's API token from `dir`, or makes one (32 random bytes,
/// hex) in a file created 0600 before it holds a byte. Refuses a token
/// file others may read.
pub fn api_token(dir: &Path) -> Result<String> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let path = dir.join(TOKEN_FILE);
    match std::fs::symlink_metadata(&path) {
        Ok(m) => {
            if !m.is_file() {
                bail!("{}: not a regular file; refused", path.display());
            }
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                bail!(
                    "{}: others may read the API token (mode {mode:03o}): chmod 600 it, or delete it \
                     for a new token",
                    path.display()
                );
            }
            let t = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let t = t.trim();
            if t.len() != 64 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!(
                    "{}: not an API token (64 hex digits); delete it for a new token",
                    path.display()
                );
            }
            Ok(t.to_owned())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut b = [0u8; 32];
            getrandom::fill(&mut b).map_err(|e| anyhow!("the API token needs randomness: {e}"))?;
            let t = keyway_vendor::keys::hex(&b);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            f.write_all(format!("{t}\n").as_bytes())
                .and_then(|()| f.sync_all())
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(t)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Makes the hub's directory (0700: the store and the token are the
/// owner's).
pub fn data_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("making {} private", dir.display()))
}

/// The first line of `keyway hub serve` and `keyway hub demo`: the API's
/// address and its token.
pub fn first_line(addr: SocketAddr, token: &str) -> String {
    format!("keyway hub: http://{addr}/ token {token}")
}

/// Reads [`first_line`] back: the API's base URL and the token.
pub fn parse_first_line(line: &str) -> Option<(String, String)> {
    let rest = line.trim().strip_prefix("keyway hub: ")?;
    let (url, token) = rest.split_once(" token ")?;
    (url.starts_with("http://") && !token.is_empty() && !token.contains(' '))
        .then(|| (url.trim_end_matches('/').to_owned(), token.to_owned()))
}

/// The SQLite store's file in the hub's directory.
pub const SQLITE_FILE: &str = "hub.sqlite";

/// The TUF mirror's directory in the hub's directory.
pub const TUF_DIR: &str = "tuf";

/// Where the store lives, for messages: the SQLite file, or the
/// PostgreSQL URL without its password.
#[derive(Debug, Clone)]
pub enum StoreAt {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database.
    Postgres(String),
}

impl StoreArgs {
    /// Opens the store: PostgreSQL for a `postgres://` --store, else
    /// SQLite in `data`. Call it outside the async runtime (the PostgreSQL
    /// client is synchronous).
    pub fn open(&self, data: &Path) -> Result<(Arc<dyn Store>, StoreAt)> {
        match self.store.as_deref() {
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                let s = PgStore::connect(u).map_err(|e| anyhow!("--store: {e}"))?;
                Ok((Arc::new(s), StoreAt::Postgres(redact(u))))
            }
            Some(u) => bail!(
                "--store {}: a PostgreSQL URL (postgres://…) or nothing (SQLite in --data)",
                redact(u)
            ),
            None => {
                let path = data.join(SQLITE_FILE);
                let s = SqliteStore::open(&path)
                    .map_err(|e| store_error(e, &StoreAt::Sqlite(path.clone())))?;
                Ok((Arc::new(s), StoreAt::Sqlite(path)))
            }
        }
    }

    /// The hub's TUF mirror in `data`: the pinned root there, or --tuf-root
    /// pinned now (TUF's bootstrap: later roots come through the chain).
    pub fn mirror(&self, data: &Path) -> Result<Option<Mirror>> {
        let dir = data.join(TUF_DIR);
        match Mirror::open(&dir) {
            Ok(m) => Ok(Some(m)),
            Err(_) => match &self.tuf_root {
                Some(r) => {
                    let bytes = std::fs::read(r)
                        .with_context(|| format!("reading --tuf-root {}", r.display()))?;
                    Mirror::init(&dir, &bytes)
                        .map(Some)
                        .map_err(|e| anyhow!("--tuf-root {}: {e}", r.display()))
                }
                None => Ok(None),
            },
        }
    }
}

/// A URL without its password.
pub(super) fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The mount point and device of the filesystem holding `path`, from
/// `/proc/self/mounts` (the longest mount point that prefixes it).
pub fn disk_of(path: &Path) -> String {
    let p = path
        .canonicalize()
        .or_else(|_| {
            path.parent()
                .map_or_else(|| Ok(path.to_owned()), Path::canonicalize)
        })
        .unwrap_or_else(|_| path.to_owned());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let dev = f.next()?;
            let at = f.next()?.replace("\\040", " ");
            p.starts_with(&at).then_some((at, dev.to_owned()))
        })
        .max_by_key(|(at, _)| at.len())
        .map_or_else(
            || format!("the disk holding {}", p.display()),
            |(at, dev)| format!("the disk mounted at {at} ({dev})"),
        )
}

/// A store error as a sentence; a full disk names the disk.
pub fn store_error(e: StoreError, at: &StoreAt) -> anyhow::Error {
    match (&e, at) {
        (StoreError::Full(why), StoreAt::Sqlite(path)) => anyhow!(
            "{} is full: the hub's store {} could not grow ({why}); the call that hit it wrote \
             nothing and what was stored before is intact: free space there and try again",
            disk_of(path),
            path.display()
        ),
        (_, StoreAt::Sqlite(path)) => anyhow!("the hub's store {}: {e}", path.display()),
        (_, StoreAt::Postgres(url)) => anyhow!("the hub's store {url}: {e}"),
    }
}

/// A hub error as a sentence; a full store names the disk.
pub fn hub_error(e: HubError, at: &StoreAt) -> anyhow::Error {
    match e {
        HubError::Store(s) => store_error(s, at),
        e => anyhow!(e),
    }
}
