//! What the `scopepilot` binary runs: `serve` and `check-config`. Kept here, in the library,
//! so that the binary is only argument parsing.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tracing_subscriber::EnvFilter;

use crate::access::Security;
use crate::config::{Config, ConfigError};
use crate::daemon::Daemon;

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The API address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Autostart failed.
    #[error("autostart failed: {0}")]
    Start(#[from] crate::daemon::DaemonError),
    /// The runtime or server failed.
    #[error("{0}")]
    Runtime(String),
}

/// Load `path`, or the embedded default when `None`.
pub fn load_config(path: Option<&Path>) -> Result<Config, ConfigError> {
    match path {
        Some(p) => Config::load(p),
        None => Ok(Config::embedded_default()),
    }
}

/// Install the log subscriber: `RUST_LOG` if set, else the config's `log.filter`.
pub fn init_logging(config: &Config) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.filter));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}

/// Run the daemon until Ctrl-C or SIGTERM. Prints one `listening` line on stdout once the API
/// accepts connections (`grpc=ADDR`, and `http=ADDR` for the preview page and metrics), for
/// people and for scripts that start it, then the preview URL.
pub fn serve(config: Config) -> Result<(), AppError> {
    init_logging(&config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| AppError::Runtime(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(serve_async(config))
}

async fn serve_async(config: Config) -> Result<(), AppError> {
    let security = Security::from_config(&config.security)
        .map_err(|(key, problem)| ConfigError::Invalid { key, problem })?;
    let open = !security.access.required();
    let scheme = if security.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let addr = config.listen_addr()?;
    if !open && security.tls.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(%addr, "tokens cross the network in clear text: configure [security.tls] or use an SSH tunnel");
    }
    if open && !addr.ip().is_loopback() {
        tracing::warn!(%addr, "the API listens on a non-loopback address: anyone who can reach it can control acquisition");
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| AppError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| AppError::Bind { addr, source })?;
    let http = if config.http.enabled {
        let addr = config.http_addr()?;
        if open && !addr.ip().is_loopback() {
            tracing::warn!(%addr, "the preview page and metrics listen on a non-loopback address: anyone who can reach it can watch the images");
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| AppError::Bind { addr, source })?;
        Some(listener)
    } else {
        None
    };
    let daemon = Daemon::new(config)?;
    daemon.spawn_drop_monitor(Duration::from_secs(5));
    if daemon.config().acquisition.autostart {
        let d = daemon.clone();
        tokio::task::spawn_blocking(move || d.start(None))
            .await
            .map_err(|e| AppError::Runtime(e.to_string()))??;
    }
    tracing::info!(%bound, streams = ?daemon.streams(), "gRPC API listening");
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let mut ready = format!(
        "scopepilot {} listening grpc={bound}",
        crate::daemon::VERSION
    );
    let web = match http {
        Some(listener) => {
            let addr = listener
                .local_addr()
                .map_err(|e| AppError::Runtime(format!("preview listener: {e}")))?;
            ready.push_str(&format!(" http={addr}"));
            tracing::info!(%addr, "preview page and metrics listening");
            let stopped = signalled(stop.clone());
            Some(tokio::spawn(crate::web::serve(
                daemon.clone(),
                security.clone(),
                listener,
                stopped,
            )))
        }
        None => None,
    };
    // One line that scripts wait for; the next tells people where to look.
    println!("{ready}");
    if let Some(addr) = ready.split(" http=").nth(1) {
        println!("preview: {scheme}://{addr}/  metrics: {scheme}://{addr}/metrics");
    }
    let shutdown = async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    };
    let server = crate::api::serve(daemon.clone(), security, listener, shutdown);
    let result = server
        .await
        .map_err(|e| AppError::Runtime(format!("gRPC server failed: {e}")));
    if let Some(web) = web {
        match web.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "preview server failed"),
            Err(e) => tracing::warn!(error = %e, "preview server task failed"),
        }
    }
    shut_down(daemon).await;
    result
}

/// Resolves once `stop` turns true.
async fn signalled(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn shut_down(daemon: Arc<Daemon>) {
    tracing::info!("shutting down");
    let _ = tokio::task::spawn_blocking(move || daemon.stop()).await;
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
