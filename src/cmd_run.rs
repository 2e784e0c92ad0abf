//! `sluice run`: start a flow, print a status line while it works, shut down
//! cleanly on SIGINT/SIGTERM and print a summary.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use sluice_flowfile_repo::{FsyncPolicy, RecoveryMode};
use sluice_runtime::{Engine, EngineOptions, FlowStatus, Registry, parse_duration};

/// Options of `sluice run`.
#[allow(clippy::struct_excessive_bools)] // command-line switches
#[derive(clap::Args)]
pub struct RunArgs {
    /// Flow files; their processors form one graph.
    #[arg(required_unless_present = "builtin")]
    flows: Vec<PathBuf>,
    /// Run a built-in flow (`sluice flows` lists them); may repeat.
    #[arg(long)]
    builtin: Vec<String>,
    /// Re-read changed flow files and apply the difference without losing
    /// queued FlowFiles; an invalid change is refused and the flow keeps going.
    #[arg(long)]
    watch: bool,
    /// Interval of the status line on stderr (`0` turns it off).
    #[arg(long, default_value = "5s")]
    status_interval: String,
    /// Stop by itself after this long (e.g. `30s`).
    #[arg(long)]
    duration: Option<String>,
    /// Address of the web flow visualizer and HTTP API (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    ui: std::net::SocketAddr,
    /// Do not serve the visualizer and API.
    #[arg(long)]
    no_ui: bool,
    /// Bearer token for API calls that change state (default: generated and
    /// printed at start). Also read from SLUICE_UI_TOKEN.
    #[arg(long, env = "SLUICE_UI_TOKEN", hide_env_values = true)]
    ui_token: Option<String>,
    /// Require the token for read-only API endpoints too.
    #[arg(long)]
    ui_closed_reads: bool,
    /// How long in-flight work may take to finish at shutdown.
    #[arg(long, default_value = "10s")]
    grace: String,
    /// FlowFile repository directory (default `./sluice-repo/<flow name>`):
    /// committed FlowFiles survive a crash and come back on the next run.
    #[arg(long, conflicts_with = "no_repository")]
    repository: Option<PathBuf>,
    /// Run in memory only: queued FlowFiles are lost if the process dies.
    #[arg(long)]
    no_repository: bool,
    /// When commits are fsynced: `always` (default: an acknowledged FlowFile
    /// survives power loss), `interval:10ms` (fewer fsyncs, later
    /// acknowledgements) or `never` (survives a crash of the process only).
    #[arg(long, default_value = "always")]
    fsync: String,
    /// What recovery may cut: `tolerate-tail` (default: only the torn tail a
    /// crash leaves) or `skip-damaged` (any damage; after `sluice repo check`).
    #[arg(long, default_value = "tolerate-tail")]
    recovery: String,
}

/// Runs the flow until a signal (or `--duration`).
pub fn run(args: RunArgs, registry: &Registry) -> Result<ExitCode> {
    init_logging();
    let spec = crate::flows::load_with_builtins(&args.flows, &args.builtin, registry)?;
    let status_every = dur("--status-interval", &args.status_interval)?;
    let grace = dur("--grace", &args.grace)?;
    let stop_after = args
        .duration
        .as_deref()
        .map(|d| dur("--duration", d))
        .transpose()?;
    let (journal, recovered) = if args.no_repository {
        (None, Vec::new())
    } else {
        let fsync: FsyncPolicy = args.fsync.parse().context("--fsync")?;
        let recovery: RecoveryMode = args.recovery.parse().context("--recovery")?;
        let dir = args
            .repository
            .clone()
            .unwrap_or_else(|| crate::cmd_run_repo::default_dir(&spec.name));
        let (journal, recovered) = crate::cmd_run_repo::open_for_run(&dir, fsync, recovery)?;
        (Some(journal), recovered)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sluice")
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let name = spec.name.clone();
        let engine = Engine::start(spec, EngineOptions { journal, recovered })
            .await
            .context("starting the flow")?;
        tracing::info!(flow = %name, "flow started");
        if !args.no_ui {
            let config = sluice_ui::UiConfig {
                address: args.ui,
                token: args.ui_token.clone(),
                open_reads: !args.ui_closed_reads,
            };
            let token = engine.shutdown_token().clone();
            match sluice_ui::serve(
                engine.clone(),
                config,
                async move { token.cancelled().await },
            )
            .await
            {
                Ok(addr) => eprintln!("web UI and API on http://{addr}/"),
                Err(e) => {
                    engine.shutdown(grace).await;
                    return Err(anyhow::anyhow!(
                        "starting the web UI on {}: {e} (use --ui ADDR or --no-ui)",
                        args.ui
                    ));
                }
            }
        }
        let started = Instant::now();
        if args.watch {
            tokio::spawn(watch(
                engine.clone(),
                args.flows.clone(),
                args.builtin.clone(),
                registry.clone(),
            ));
        }
        let reason = wait_for_stop(&engine, status_every, stop_after).await;
        tracing::info!(flow = %name, reason, "shutting down");
        engine.shutdown(grace).await;
        eprintln!("{}", summary(&engine.status(), started.elapsed()));
        Ok(ExitCode::SUCCESS)
    })
}

/// Polls the flow files' modification times; on a change, validates and
/// applies the new flow. Invalid changes are refused with their errors.
async fn watch(
    engine: Arc<Engine>,
    paths: Vec<PathBuf>,
    builtins: Vec<String>,
    registry: Registry,
) {
    let stamp = |paths: &[PathBuf]| -> Vec<Option<std::time::SystemTime>> {
        paths
            .iter()
            .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .collect()
    };
    let mut last = stamp(&paths);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            () = engine.shutdown_token().cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = stamp(&paths);
        if now == last {
            continue;
        }
        last = now;
        match crate::flows::load_with_builtins(&paths, &builtins, &registry) {
            Err(e) => {
                tracing::error!(error = %e, "flow change refused; the running flow is unchanged");
            }
            Ok(spec) => match engine.reload(spec).await {
                Ok(s) if s.is_empty() => tracing::info!("flow files changed; nothing to apply"),
                Ok(s) => tracing::info!(
                    added = ?s.added,
                    removed = ?s.removed,
                    changed = ?s.changed,
                    connections = ?s.connections_changed,
                    moved = s.flowfiles_moved,
                    orphaned = s.flowfiles_orphaned,
                    failed = ?s.failed_to_start,
                    "flow reloaded"
                ),
                Err(e) => {
                    tracing::error!(error = %e, "flow change refused; the running flow is unchanged");
                }
            },
        }
    }
}

fn dur(flag: &str, s: &str) -> Result<Duration> {
    match parse_duration(s) {
        Ok(d) => Ok(d),
        Err(e) => bail!("{flag}: {e}"),
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

async fn wait_for_stop(
    engine: &Arc<Engine>,
    status_every: Duration,
    stop_after: Option<Duration>,
) -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM");
            None
        }
    };
    let deadline = stop_after.map(|d| tokio::time::Instant::now() + d);
    let mut last = engine.status();
    let mut last_at = Instant::now();
    let tick_every = if status_every.is_zero() {
        Duration::from_hours(1)
    } else {
        status_every
    };
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + tick_every, tick_every);
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return "SIGINT",
            () = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => return "SIGTERM",
            () = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => return "--duration elapsed",
            _ = tick.tick() => {
                if !status_every.is_zero() {
                    let now = engine.status();
                    eprintln!("{}", status_line(&last, &now, last_at.elapsed()));
                    last = now;
                    last_at = Instant::now();
                }
            }
        }
    }
}

fn totals(s: &FlowStatus) -> (u64, u64, u64, u64) {
    let created = s.processors.iter().map(|p| p.flowfiles_created).sum();
    let left = s.processors.iter().map(|p| p.flowfiles_dropped).sum();
    let errors = s.processors.iter().map(|p| p.errors).sum();
    let dropped = s
        .connections
        .iter()
        .map(|c| c.dropped_overflow + c.dropped_expired)
        .sum();
    (created, left, errors, dropped)
}

#[allow(clippy::cast_precision_loss)]
fn rate(n: u64, d: Duration) -> String {
    let r = n as f64 / d.as_secs_f64().max(1e-3);
    if r >= 1e6 {
        format!("{:.1}M/s", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1}k/s", r / 1e3)
    } else {
        format!("{r:.0}/s")
    }
}

/// One compact line: FlowFiles entering and leaving per second, queued,
/// back-pressured connections, drops and errors since the last line.
fn status_line(prev: &FlowStatus, now: &FlowStatus, elapsed: Duration) -> String {
    let (c0, l0, e0, d0) = totals(prev);
    let (c1, l1, e1, d1) = totals(now);
    let queued: u64 = now.connections.iter().map(|c| c.queued_count).sum();
    let mut line = format!(
        "status: in {} out {} queued {}",
        rate(c1.saturating_sub(c0), elapsed),
        rate(l1.saturating_sub(l0), elapsed),
        queued
    );
    let bp: Vec<&str> = now
        .connections
        .iter()
        .filter(|c| c.back_pressured)
        .map(|c| c.id.as_str())
        .collect();
    if !bp.is_empty() {
        let _ = write!(line, " back-pressured [{}]", bp.join(", "));
    }
    if d1 > d0 {
        let _ = write!(line, " dropped +{}", d1 - d0);
    }
    if e1 > e0 {
        let _ = write!(line, " errors +{}", e1 - e0);
    }
    // Named drop counters of sources (udp.dropped, rejected.backpressure...).
    for p in &now.processors {
        for (k, v) in &p.counters {
            if k.contains("dropped") || k.contains("rejected") {
                let before = prev
                    .processors
                    .iter()
                    .find(|q| q.id == p.id)
                    .and_then(|q| q.counters.get(k))
                    .copied()
                    .unwrap_or(0);
                if *v > before {
                    let _ = write!(line, " {}.{} +{}", p.id, k, v - before);
                }
            }
        }
    }
    line
}

fn summary(s: &FlowStatus, ran: Duration) -> String {
    let mut out = format!("summary: flow `{}` ran {:.1}s\n", s.name, ran.as_secs_f64());
    for p in &s.processors {
        let _ = writeln!(
            out,
            "  {:<20} {:<18} in {:>9} out {:>9} created {:>9} dropped {:>9} errors {}",
            p.id,
            p.kind,
            p.flowfiles_in,
            p.flowfiles_out,
            p.flowfiles_created,
            p.flowfiles_dropped,
            p.errors
        );
    }
    let queued: u64 = s.connections.iter().map(|c| c.queued_count).sum();
    let _ = write!(out, "  still queued: {queued}");
    out
}
