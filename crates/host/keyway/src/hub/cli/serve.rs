//! `keyway hub serve`: the daemon (store, TUF mirror, engine tick, JSON
//! API, graceful stop on SIGINT and SIGTERM).

use super::*;

/// Refuses an API address beyond loopback unless `insecure`.
pub fn check_listen(addr: SocketAddr, insecure: bool) -> Result<()> {
    if addr.ip().is_loopback() || insecure {
        return Ok(());
    }
    bail!(
        "--listen {addr}: the hub's API serves on loopback (127.0.0.1, ::1) by default, because \
         anyone who reaches it may try the token that consents to updates; to serve every host \
         that can reach {} anyway, add --listen-insecure-any-address (and put TLS in front)",
        addr.ip()
    )
}

/// The connector of a command that never talks to a lock (`hub import`):
/// every connection is refused, saying why.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLocks;

impl Connector for NoLocks {
    fn connect(&self, lock: &LockRecord) -> Result<Box<dyn LockLink>, LinkError> {
        Err(LinkError::Unreachable {
            address: format!("{} (keyway hub import talks to no lock)", lock.address),
        })
    }
}

/// One TUF sync (`Mirror::sync`: one verified refresh, then the targets
/// the hub does not hold yet, each verified against its signed length
/// and hash), handed to the engine's intake; the freshness recorded
/// either way.
pub async fn sync_tuf(hub: &Arc<Hub>, mirror: &Mirror, url: &str) -> Result<IngestReport> {
    let now = Timestamp::now();
    let result = async {
        let h = Arc::clone(hub);
        let held: std::collections::HashSet<String> =
            tokio::task::spawn_blocking(move || h.store().releases(None))
                .await??
                .into_iter()
                .map(|r| r.digest.to_hex())
                .collect();
        // One refresh, then the targets the hub does not hold yet.
        let synced = mirror
            .sync(Source::http(url), |t| !held.contains(&t.sha256), now)
            .await
            .map_err(|e| anyhow!("{e}"))?;
        let mut incoming = Vec::new();
        let mut failed = Vec::new();
        for (t, r) in synced.downloaded {
            match r {
                Ok(bytes) => incoming.push(Incoming {
                    target: t.name,
                    bytes,
                    origin: ReleaseOrigin::Tuf {
                        url: url.to_owned(),
                    },
                }),
                Err(e) => failed.push((t.name, e.to_string())),
            }
        }
        let h = Arc::clone(hub);
        let mut report = tokio::task::spawn_blocking(move || h.ingest(incoming)).await??;
        for (target, why) in failed {
            report.refused.push(keyway_hub::engine::Refused {
                message: format!("the TUF download failed: {why}"),
                reason: keyway_hub::engine::intake::IntakeRefusal::Malformed {
                    check: "tuf".into(),
                    message: why,
                },
                target,
            });
        }
        Ok::<_, anyhow::Error>((
            report,
            synced.versions.timestamp,
            synced.timestamp_expires.as_second(),
        ))
    }
    .await;
    let h = Arc::clone(hub);
    let url = url.to_owned();
    match result {
        Ok((report, v, exp)) => {
            tokio::task::spawn_blocking(move || h.record_tuf_fresh(&url, v, exp)).await??;
            Ok(report)
        }
        Err(e) => {
            let why = format!("{e:#}");
            tokio::task::spawn_blocking(move || h.record_tuf_error(&url, &why)).await??;
            Err(e)
        }
    }
}

/// Runs once the hub is up and before its first line (the demo house
/// adds and pairs its locks); returns what to print after the first line.
pub type Setup = Box<dyn FnOnce(Arc<Hub>, SocketAddr, String) -> Result<String> + Send>;

pub(super) fn serve(a: &ServeArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    serve_with(a, out, err, None)
}

/// `keyway hub serve`, with the demo's `setup` (which also waits for the
/// first TUF sync before the first line).
pub fn serve_with(
    a: &ServeArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
    setup: Option<Setup>,
) -> Result<()> {
    check_listen(a.listen, a.listen_insecure_any_address)?;
    data_dir(&a.data)?;
    let token = api_token(&a.data)?;
    let (store, at) = a.stores.open(&a.data)?;
    let config = HubConfig {
        concurrency: a.concurrency.max(1),
        log_interval_secs: i64::try_from(a.log_every).unwrap_or(i64::MAX),
        ..HubConfig::default()
    };
    let identity = HubIdentity::load_or_create(&a.data).map_err(|e| anyhow!("{e}"))?;
    let hub = Arc::new(Hub::new(
        store,
        Arc::new(UdpConnector::new(identity)),
        Arc::new(SystemClock),
        config,
    ));
    if let Some(m) = a.model.anchors()? {
        hub.put_model(&m).map_err(|e| hub_error(e, &at))?;
    }
    let tuf = match (&a.tuf_url, a.stores.mirror(&a.data)?) {
        (Some(url), Some(m)) => Some((url.clone(), m)),
        (Some(url), None) => bail!(
            "--tuf-url {url}: the hub trusts no TUF root yet: give the vendor's root.json with --tuf-root"
        ),
        (None, _) => None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the hub's runtime")?;
    let r = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(a.listen)
            .await
            .with_context(|| format!("--listen {}: cannot listen", a.listen))?;
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback() {
            writeln!(
                err,
                "WARNING: the hub's API listens on {addr} (--listen-insecure-any-address): every host that reaches it may try the token"
            )?;
        }
        // Home Assistant: the bridge runs until the runtime stops.
        let _mqtt = match a.mqtt.options(addr)? {
            Some(o) => {
                writeln!(
                    err,
                    "keyway hub: Home Assistant discovery on {} (prefix {})",
                    a.mqtt.mqtt.as_deref().unwrap_or_default(),
                    a.mqtt.mqtt_prefix
                )?;
                Some(keyway_hub::mqtt::spawn(Arc::clone(&hub), o))
            }
            None => None,
        };
        if let Some((url, m)) = tuf {
            let (hub, every) = (Arc::clone(&hub), Duration::from_secs(a.sync_every.max(1)));
            let first = if setup.is_some() {
                // The demo: its releases are in before its first line.
                let r = sync_tuf(&hub, &m, &url).await.with_context(|| format!("syncing {url}"))?;
                writeln!(
                    err,
                    "keyway hub: TUF sync of {url}: {} imported, {} refused",
                    r.imported.len(),
                    r.refused.len()
                )?;
                every
            } else {
                Duration::ZERO
            };
            tokio::spawn(async move {
                tokio::time::sleep(first).await;
                loop {
                    match sync_tuf(&hub, &m, &url).await {
                        Ok(r) => eprintln!(
                            "keyway hub: TUF sync of {url}: {} imported, {} already held, {} refused",
                            r.imported.len(),
                            r.already_held.len(),
                            r.refused.len()
                        ),
                        Err(e) => eprintln!("keyway hub: TUF sync of {url} failed: {e:#}"),
                    }
                    tokio::time::sleep(every).await;
                }
            });
        }
        {
            let (hub, every) = (Arc::clone(&hub), Duration::from_secs(a.tick_every.max(1)));
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let h = Arc::clone(&hub);
                    match tokio::task::spawn_blocking(move || h.tick()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => eprintln!("keyway hub: tick: {e}"),
                        Err(e) => eprintln!("keyway hub: tick: {e}"),
                    }
                }
            });
        }
        let guide = match setup {
            Some(f) => {
                let (h, t) = (Arc::clone(&hub), token.clone());
                tokio::task::spawn_blocking(move || f(h, addr, t)).await??
            }
            None => String::new(),
        };
        writeln!(out, "{}", first_line(addr, &token))?;
        write!(out, "{guide}")?;
        out.flush()?;
        {
            // Rollouts a previous run left mid-way (a SIGKILL) go on.
            let hub = Arc::clone(&hub);
            tokio::task::spawn_blocking(move || {
                if let Err(e) = hub.resume_rollouts() {
                    eprintln!("keyway hub: resuming rollouts: {e}");
                }
            });
        }
        let api = Api {
            hub: Arc::clone(&hub),
            releases_in: Some(Arc::new(BundleReader::new(&a.data))),
            token,
        };
        // The JSON API and the web UI on one port (the UI's pages call the
        // same actions as the API). A non-loopback address is one the UI's
        // DNS-rebinding guard must accept as a `Host`.
        let mut web = keyway_hub::web::WebOptions::default();
        if !addr.ip().is_loopback() {
            web.allowed_hosts.push(addr.to_string());
        }
        axum::serve(listener, keyway_hub::web::app(api, web))
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("serving the API")
    });
    // A push in flight finishes its current step; consents are durable.
    rt.shutdown_timeout(Duration::from_secs(10));
    r
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM: the hub's graceful stop.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
