//! The hub's TUF mirror: sigstore-tuf's client with an on-disk cache.
//!
//! [`Session`] is one run of the TUF client workflow (sigstore-tuf's
//! `Updater`: root chain, timestamp, snapshot, targets; signature
//! thresholds, anti-rollback, expiry, length and hash pins) over a
//! [`Source`]: a repository served over HTTP, or a repository directory read
//! offline. Keyway's transport ([`Transport`]) bounds every read by the limit
//! the verified metadata gives (a target's signed length, never a header)
//! and keeps a typed record of why a transfer failed, so errors reach the
//! hub as [`MirrorError`] variants with data, not as strings to parse.
//!
//! [`Mirror`] is the hub's persistent mirror in its data directory:
//!
//! ```text
//! DATA/tuf/trusted-root.json   the root the owner installed (pinned)
//! DATA/tuf/cache/              the verified metadata (write-through):
//!                              root.json, timestamp.json, snapshot.json,
//!                              targets.json, root_history/N.root.json
//! DATA/tuf/state.json          when the hub last saw a fresh timestamp
//! ```
//!
//! Every run re-verifies the cache from the pinned root, so a tampered cache
//! can fail a refresh but never pass one. Cached versions are the floors the
//! network (or a bundle) must meet: anti-rollback spans restarts.

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sigstore_tuf::transport::FetchFuture;
use sigstore_tuf::{FileStore, Metadata, MetadataStore, Timestamp, Updater, UpdaterConfig};

use crate::error::{MirrorError, TransportError};
use crate::summary::ReleaseSummary;

/// Most bytes the hub accepts for one release envelope (64 MiB), whatever
/// the metadata says.
pub const MAX_TARGET_BYTES: u64 = 64 << 20;

/// Where a repository is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Over HTTP(S).
    Http {
        /// Base URL of the metadata files (`…/metadata/`).
        metadata_url: String,
        /// Base URL of the target files (`…/targets/`).
        targets_url: String,
    },
    /// A repository (or bundle) directory, offline.
    Dir {
        /// The metadata directory.
        metadata: PathBuf,
        /// The targets directory.
        targets: PathBuf,
    },
}

impl Source {
    /// A repository `keyway publish` wrote, served at `base`
    /// (`base/metadata/`, `base/targets/`).
    pub fn http(base: &str) -> Source {
        let base = base.trim_end_matches('/');
        Source::Http {
            metadata_url: format!("{base}/metadata/"),
            targets_url: format!("{base}/targets/"),
        }
    }

    /// A repository or bundle directory (`dir/metadata`, `dir/targets`).
    pub fn dir(dir: &Path) -> Source {
        Source::Dir {
            metadata: dir.join("metadata"),
            targets: dir.join("targets"),
        }
    }
}

/// Keyway's transport for sigstore-tuf: HTTP via reqwest (rustls) or a
/// directory; every read bounded; byte counts kept for the sync figure.
#[derive(Debug)]
pub struct Transport {
    source: Source,
    client: Option<sigstore_tuf::reqwest::Client>,
    failure: Mutex<Option<TransportError>>,
    bytes: AtomicU64,
    files: AtomicU64,
}

/// Which half of a repository a file is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Area {
    /// `metadata/`: the signed roles.
    Metadata,
    /// `targets/`: the envelopes.
    Targets,
}

/// A relative name from metadata must not climb out of its base.
fn safe_rel(name: &str) -> bool {
    let p = Path::new(name);
    !name.is_empty()
        && p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

impl Transport {
    fn new(source: Source) -> Result<Transport, MirrorError> {
        let client = match &source {
            Source::Http { .. } => Some(
                sigstore_tuf::reqwest::Client::builder()
                    // Slow retrieval: a stalled server cannot hold a refresh.
                    .connect_timeout(std::time::Duration::from_secs(20))
                    .read_timeout(std::time::Duration::from_secs(30))
                    .timeout(std::time::Duration::from_secs(300))
                    .build()
                    .map_err(|e| {
                        MirrorError::Transport(TransportError::Unreachable {
                            location: String::new(),
                            detail: e.to_string(),
                        })
                    })?,
            ),
            Source::Dir { .. } => None,
        };
        Ok(Transport {
            source,
            client,
            failure: Mutex::new(None),
            bytes: AtomicU64::new(0),
            files: AtomicU64::new(0),
        })
    }

    fn fail(&self, e: TransportError) -> sigstore_tuf::Error {
        let msg = e.to_string();
        if let Ok(mut f) = self.failure.lock() {
            *f = Some(e);
        }
        sigstore_tuf::Error::transport(msg)
    }

    fn take_failure(&self) -> Option<TransportError> {
        self.failure.lock().ok().and_then(|mut f| f.take())
    }

    async fn get(
        &self,
        area: Area,
        name: &str,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, sigstore_tuf::Error> {
        if !safe_rel(name) {
            return Err(self.fail(TransportError::Missing {
                what: name.to_owned(),
                location: "(a path outside the repository)".into(),
            }));
        }
        let got = match &self.source {
            Source::Dir {
                metadata: m,
                targets: t,
            } => {
                let path = match area {
                    Area::Metadata => m,
                    Area::Targets => t,
                }
                .join(name);
                read_bounded(&path, name, limit).map_err(|e| self.fail(e))?
            }
            Source::Http {
                metadata_url,
                targets_url,
            } => {
                let base = match area {
                    Area::Metadata => metadata_url,
                    Area::Targets => targets_url,
                };
                let sep = if base.ends_with('/') { "" } else { "/" };
                let url = format!("{base}{sep}{name}");
                self.http_get(&url, name, limit)
                    .await
                    .map_err(|e| self.fail(e))?
            }
        };
        if let Some(b) = &got {
            self.bytes.fetch_add(b.len() as u64, Ordering::Relaxed);
            self.files.fetch_add(1, Ordering::Relaxed);
        }
        Ok(got)
    }

    async fn http_get(
        &self,
        url: &str,
        name: &str,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, TransportError> {
        let Some(client) = &self.client else {
            return Err(TransportError::Unreachable {
                location: url.to_owned(),
                detail: "no HTTP client".into(),
            });
        };
        let unreachable = |e: sigstore_tuf::reqwest::Error| TransportError::Unreachable {
            location: url.to_owned(),
            detail: e.to_string(),
        };
        let mut resp = client.get(url).send().await.map_err(unreachable)?;
        let status = resp.status().as_u16();
        // 404 ends the root chain; object stores answer 403 for a missing key.
        if status == 404 || status == 403 {
            return Ok(None);
        }
        if !(200..300).contains(&status) {
            return Err(TransportError::Status {
                location: url.to_owned(),
                status,
            });
        }
        let too_long = || TransportError::TooLong {
            what: name.to_owned(),
            location: url.to_owned(),
            limit,
        };
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(too_long());
        }
        // The header is advisory: count what actually arrives.
        let mut buf = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(unreachable)? {
            if buf.len() as u64 + chunk.len() as u64 > limit {
                return Err(too_long());
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Some(buf))
    }
}

/// Reads at most `limit` bytes of `path`; a longer file is refused without
/// reading past the limit.
pub(crate) fn read_bounded(
    path: &Path,
    what: &str,
    limit: u64,
) -> Result<Option<Vec<u8>>, TransportError> {
    use std::io::Read as _;
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(TransportError::Read {
                location: path.display().to_string(),
                detail: e.to_string(),
            });
        }
    };
    let mut buf = Vec::new();
    f.take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| TransportError::Read {
            location: path.display().to_string(),
            detail: e.to_string(),
        })?;
    if buf.len() as u64 > limit {
        return Err(TransportError::TooLong {
            what: what.to_owned(),
            location: path.display().to_string(),
            limit,
        });
    }
    Ok(Some(buf))
}

/// The transport shared between the updater and the session (for its
/// failure record and byte counts).
#[derive(Debug, Clone)]
struct Shared(Arc<Transport>);

impl sigstore_tuf::Repository for Shared {
    fn fetch_metadata<'a>(&'a self, name: &'a str, max_length: u64) -> FetchFuture<'a> {
        Box::pin(self.0.get(Area::Metadata, name, max_length))
    }

    fn fetch_target<'a>(&'a self, path: &'a str, max_length: u64) -> FetchFuture<'a> {
        Box::pin(self.0.get(Area::Targets, path, max_length))
    }
}

/// A verified target as the targets metadata lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedTarget {
    /// The TUF target path (`CLASS/FILE`).
    pub name: String,
    /// Its signed length.
    pub length: u64,
    /// Its signed SHA-256, hex.
    pub sha256: String,
    /// Keyway's summary from the `custom` field, when it has one. For
    /// listing only: the hub decides from the envelope.
    pub summary: Option<ReleaseSummary>,
}

fn list(targets: &sigstore_tuf::Targets) -> Vec<ListedTarget> {
    targets
        .targets
        .iter()
        .map(|(name, t)| ListedTarget {
            name: name.clone(),
            length: t.length,
            sha256: t.hashes.get("sha256").cloned().unwrap_or_default(),
            summary: ReleaseSummary::from_custom(t.custom.as_ref()),
        })
        .collect()
}

/// The metadata versions a verified refresh ended at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedVersions {
    /// Root.
    pub root: u64,
    /// Timestamp.
    pub timestamp: u64,
    /// Snapshot.
    pub snapshot: u64,
    /// Targets.
    pub targets: u64,
}

/// One run of the TUF client workflow over a source, with a metadata store.
pub struct Session {
    updater: Updater,
    transport: Arc<Transport>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("source", &self.transport.source)
            .finish()
    }
}

impl Session {
    /// Starts from `trusted_root` (any root version the client trusts) and
    /// `store` (whose cached roots and versions it re-verifies).
    pub fn new(
        trusted_root: &[u8],
        source: Source,
        store: impl MetadataStore + 'static,
    ) -> Result<Session, MirrorError> {
        let transport = Arc::new(Transport::new(source)?);
        let mut config = UpdaterConfig::default();
        config.target_max_length = MAX_TARGET_BYTES;
        let updater = Updater::new(Shared(transport.clone()), trusted_root)
            .map_err(|e| MirrorError::BadTrustedRoot {
                detail: e.to_string(),
            })?
            .with_config(config)
            .with_store(store);
        Ok(Session { updater, transport })
    }

    fn err(&self, e: sigstore_tuf::Error) -> MirrorError {
        MirrorError::from_tuf(e, self.transport.take_failure())
    }

    /// Runs the refresh workflow (root chain, timestamp, snapshot, targets).
    pub async fn refresh(&mut self, now: jiff::Timestamp) -> Result<TrustedVersions, MirrorError> {
        self.transport.take_failure();
        self.updater.refresh(now).await.map_err(|e| self.err(e))?;
        self.versions().ok_or(MirrorError::NotRefreshed)
    }

    /// The versions trusted now (after a successful refresh).
    pub fn versions(&self) -> Option<TrustedVersions> {
        let t = self.updater.trusted();
        Some(TrustedVersions {
            root: t.root().version,
            timestamp: t.timestamp()?.version,
            snapshot: t.snapshot()?.version,
            targets: t.targets_role("targets")?.version,
        })
    }

    /// When the trusted timestamp expires (after a successful refresh): the
    /// moment the hub's view turns stale unless it syncs again.
    pub fn timestamp_expires(&self) -> Option<jiff::Timestamp> {
        self.updater.trusted().timestamp().map(|t| t.expires)
    }

    /// The verified top-level targets (after a successful refresh).
    pub fn targets(&self) -> Result<Vec<ListedTarget>, MirrorError> {
        self.updater
            .trusted()
            .targets_role("targets")
            .map(list)
            .ok_or(MirrorError::NotRefreshed)
    }

    /// The verified metadata of one target (delegations walked).
    pub async fn target_info(
        &mut self,
        name: &str,
        now: jiff::Timestamp,
    ) -> Result<sigstore_tuf::TargetFile, MirrorError> {
        self.transport.take_failure();
        match self.updater.get_target_info(name, now).await {
            Ok(Some(t)) => Ok(t),
            Ok(None) => Err(MirrorError::UnknownTarget {
                target: name.to_owned(),
            }),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Downloads a target, reading at most its signed length (and never more
    /// than [`MAX_TARGET_BYTES`]), and checks its length and hashes. A copy
    /// already in the store with matching hashes is returned without a
    /// transfer.
    pub async fn download(
        &mut self,
        name: &str,
        now: jiff::Timestamp,
    ) -> Result<Vec<u8>, MirrorError> {
        let info = self.target_info(name, now).await?;
        if info.length > MAX_TARGET_BYTES {
            return Err(MirrorError::TargetTooLarge {
                target: name.to_owned(),
                length: info.length,
                limit: MAX_TARGET_BYTES,
            });
        }
        if let Some(b) = self.updater.find_cached_target(&info, name) {
            return Ok(b);
        }
        self.download_info(&info, name).await
    }

    /// Downloads a target whose verified metadata the caller already holds.
    pub async fn download_info(
        &mut self,
        info: &sigstore_tuf::TargetFile,
        name: &str,
    ) -> Result<Vec<u8>, MirrorError> {
        self.transport.take_failure();
        self.updater
            .download_target(info, name)
            .await
            .map_err(|e| self.err(e))
    }

    /// Files and bytes this session transferred so far.
    pub fn transferred(&self) -> (u64, u64) {
        (
            self.transport.files.load(Ordering::Relaxed),
            self.transport.bytes.load(Ordering::Relaxed),
        )
    }
}

/// How fresh the hub's view of the repository is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// The newest timestamp version the hub verified, if any.
    pub timestamp_version: Option<u64>,
    /// When that timestamp expires.
    pub expires: Option<jiff::Timestamp>,
    /// When the hub last completed a refresh with an unexpired timestamp.
    pub last_fresh_at: Option<jiff::Timestamp>,
    /// Whether that timestamp is still unexpired at `now`. A stale view
    /// (an outage, or a freeze attack) is a warning: it never blocks
    /// installing what the hub holds (the lock's anti-rollback makes an old
    /// release harmless).
    pub fresh: bool,
}

impl Freshness {
    /// A sentence for the owner.
    pub fn describe(&self, now: jiff::Timestamp) -> String {
        match (self.timestamp_version, self.expires) {
            (None, _) | (_, None) => {
                "the hub has never synced the vendor's repository: connect it to the internet or \
                 import a bundle"
                    .into()
            }
            (Some(v), Some(exp)) if self.fresh => {
                format!("up to date: repository timestamp version {v}, valid until {exp}")
            }
            (Some(v), Some(exp)) => format!(
                "stale: the newest repository timestamp the hub has (version {v}) expired at \
                 {exp}, {} ago; the internet may be down or the mirror frozen. Releases the hub \
                 holds still install.",
                now.since(exp)
                    .map(|s| format!("{s:#}"))
                    .unwrap_or_else(|_| "some time".into())
            ),
        }
    }
}

/// The mirror's metadata cache: sigstore-tuf's atomic [`FileStore`],
/// keeping only what the next run needs — the non-versioned role files and
/// the verified root history. Versioned copies (`N.snapshot.json`, one per
/// refresh) and target files are not kept: they would grow without bound,
/// and the hub keeps the envelopes it accepted in its own store.
#[derive(Debug, Clone)]
pub(crate) struct CacheStore(FileStore);

fn cacheable(name: &str) -> bool {
    if let Some(rest) = name.strip_prefix("root_history/") {
        return !rest.contains('/');
    }
    !name.contains('/')
        && !name
            .split('.')
            .next()
            .is_some_and(|stem| !stem.is_empty() && stem.bytes().all(|b| b.is_ascii_digit()))
}

impl MetadataStore for CacheStore {
    fn load(&self, name: &str) -> sigstore_tuf::Result<Option<Vec<u8>>> {
        if cacheable(name) {
            self.0.load(name)
        } else {
            Ok(None)
        }
    }

    fn store(&self, name: &str, bytes: &[u8]) -> sigstore_tuf::Result<()> {
        if cacheable(name) {
            self.0.store(name, bytes)
        } else {
            Ok(())
        }
    }
}

/// The hub's persistent mirror.
#[derive(Debug, Clone)]
pub struct Mirror {
    dir: PathBuf,
}

fn mio<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> MirrorError + 'a {
    move |source| MirrorError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct State {
    last_fresh_at: Option<i64>,
}

impl Mirror {
    /// Creates the mirror in `dir` (the hub's `DATA/tuf`) trusting
    /// `trusted_root` (normally the vendor's `1.root.json`). Checks that it
    /// is a self-signed TUF root; re-initialising replaces the pin and keeps
    /// the cache.
    pub fn init(dir: &Path, trusted_root: &[u8]) -> Result<Mirror, MirrorError> {
        sigstore_tuf::TrustedMetadataSet::from_root(trusted_root).map_err(|e| {
            MirrorError::BadTrustedRoot {
                detail: e.to_string(),
            }
        })?;
        std::fs::create_dir_all(dir.join("cache")).map_err(mio("create", dir))?;
        let p = dir.join("trusted-root.json");
        crate::writer::write_atomic_io(&p, trusted_root).map_err(mio("write", &p))?;
        Ok(Mirror {
            dir: dir.to_owned(),
        })
    }

    /// Opens the mirror in `dir`.
    pub fn open(dir: &Path) -> Result<Mirror, MirrorError> {
        if !dir.join("trusted-root.json").exists() {
            return Err(MirrorError::NotInitialized {
                dir: dir.to_owned(),
            });
        }
        Ok(Mirror {
            dir: dir.to_owned(),
        })
    }

    /// The mirror's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn pinned_root(&self) -> Result<Vec<u8>, MirrorError> {
        let p = self.dir.join("trusted-root.json");
        std::fs::read(&p).map_err(mio("read", &p))
    }

    pub(crate) fn store(&self) -> CacheStore {
        CacheStore(FileStore::new(self.dir.join("cache")))
    }

    pub(crate) fn cache_dir(&self) -> PathBuf {
        self.dir.join("cache")
    }

    /// A session over `source` with this mirror's pin and cache.
    pub fn session(&self, source: Source) -> Result<Session, MirrorError> {
        Session::new(&self.pinned_root()?, source, self.store())
    }

    /// Refreshes from `source` and returns the verified targets. Records
    /// the moment as the last fresh sync.
    pub async fn refresh(
        &self,
        source: Source,
        now: jiff::Timestamp,
    ) -> Result<Refreshed, MirrorError> {
        let mut s = self.session(source)?;
        let versions = s.refresh(now).await?;
        let targets = s.targets()?;
        let (files, bytes) = s.transferred();
        self.mark_fresh(now)?;
        Ok(Refreshed {
            versions,
            timestamp_expires: s.timestamp_expires().unwrap_or(now),
            targets,
            files,
            bytes,
        })
    }

    pub(crate) fn mark_fresh(&self, now: jiff::Timestamp) -> Result<(), MirrorError> {
        let p = self.dir.join("state.json");
        let s = State {
            last_fresh_at: Some(now.as_second()),
        };
        let bytes = serde_json::to_vec(&s).unwrap_or_default();
        crate::writer::write_atomic_io(&p, &bytes).map_err(mio("write", &p))
    }

    /// Refreshes and downloads one target (verified; from the cache when it
    /// holds a matching copy).
    pub async fn download(
        &self,
        source: Source,
        target: &str,
        now: jiff::Timestamp,
    ) -> Result<Vec<u8>, MirrorError> {
        let mut s = self.session(source)?;
        s.refresh(now).await?;
        self.mark_fresh(now)?;
        s.download(target, now).await
    }

    /// Refreshes once and downloads several targets: each result on its
    /// own, so one bad target does not stop the others.
    pub async fn download_many(
        &self,
        source: Source,
        targets: &[String],
        now: jiff::Timestamp,
    ) -> Result<Vec<(String, Result<Vec<u8>, MirrorError>)>, MirrorError> {
        let mut s = self.session(source)?;
        s.refresh(now).await?;
        self.mark_fresh(now)?;
        let mut out = Vec::with_capacity(targets.len());
        for t in targets {
            let r = s.download(t, now).await;
            out.push((t.clone(), r));
        }
        Ok(out)
    }

    /// One sync for the hub: refresh, then download every verified target
    /// `want` selects (e.g. those whose SHA-256 the hub does not hold yet,
    /// for models it serves), each result on its own. What the hub then
    /// offers still has to pass `keyway_suit::verify_envelope` against the
    /// model's anchors.
    pub async fn sync(
        &self,
        source: Source,
        want: impl Fn(&ListedTarget) -> bool,
        now: jiff::Timestamp,
    ) -> Result<Synced, MirrorError> {
        let mut s = self.session(source)?;
        let versions = s.refresh(now).await?;
        self.mark_fresh(now)?;
        let listed = s.targets()?;
        let mut downloaded = Vec::new();
        for t in listed.iter().filter(|t| want(t)) {
            let r = s.download(&t.name, now).await;
            downloaded.push((t.clone(), r));
        }
        let (files, bytes) = s.transferred();
        Ok(Synced {
            versions,
            timestamp_expires: s.timestamp_expires().unwrap_or(now),
            listed,
            downloaded,
            files,
            bytes,
        })
    }

    /// The targets of the newest targets metadata in the cache (verified
    /// when it was stored), without network.
    pub fn targets(&self) -> Result<Vec<ListedTarget>, MirrorError> {
        let p = self.cache_dir().join("targets.json");
        let bytes = match std::fs::read(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(MirrorError::NotRefreshed);
            }
            Err(e) => return Err(mio("read", &p)(e)),
        };
        let m = Metadata::<sigstore_tuf::Targets>::from_slice(&bytes)
            .map_err(|e| MirrorError::from_tuf(e, None))?;
        Ok(list(m.signed()))
    }

    /// How fresh the hub's view is at `now`.
    pub fn freshness(&self, now: jiff::Timestamp) -> Freshness {
        let ts = std::fs::read(self.cache_dir().join("timestamp.json"))
            .ok()
            .and_then(|b| Metadata::<Timestamp>::from_slice(&b).ok());
        let last_fresh_at = std::fs::read(self.dir.join("state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<State>(&b).ok())
            .and_then(|s| s.last_fresh_at)
            .and_then(|s| jiff::Timestamp::from_second(s).ok());
        let expires = ts.as_ref().map(|m| m.signed().expires);
        Freshness {
            timestamp_version: ts.as_ref().map(|m| m.signed().version),
            expires,
            last_fresh_at,
            fresh: expires.is_some_and(|e| now < e),
        }
    }
}

/// What a refresh brought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refreshed {
    /// The versions now trusted.
    pub versions: TrustedVersions,
    /// When the verified timestamp expires.
    pub timestamp_expires: jiff::Timestamp,
    /// The verified targets.
    pub targets: Vec<ListedTarget>,
    /// Files transferred.
    pub files: u64,
    /// Bytes transferred.
    pub bytes: u64,
}

/// What [`Mirror::sync`] did.
#[derive(Debug)]
pub struct Synced {
    /// The versions now trusted.
    pub versions: TrustedVersions,
    /// When the verified timestamp expires (`Hub::record_tuf_fresh`'s
    /// `expires`).
    pub timestamp_expires: jiff::Timestamp,
    /// Every verified target.
    pub listed: Vec<ListedTarget>,
    /// The targets downloaded (verified by length and hash), or why not.
    pub downloaded: Vec<(ListedTarget, Result<Vec<u8>, MirrorError>)>,
    /// Files transferred.
    pub files: u64,
    /// Bytes transferred.
    pub bytes: u64,
}
