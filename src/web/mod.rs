//! The HTTP side of the daemon, on its own port: the live preview page (`/`), its data
//! (`/api/status`, `/api/live`, `/ws/preview`) and Prometheus `/metrics`.
//!
//! Everything here reads the daemon; nothing here controls it (control is the gRPC API's
//! job). Images are latest-only and rendered off the pipeline's threads, so a browser on a
//! slow link never slows acquisition.

mod json;
mod live;
mod preview;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::access::{Access, Role, Security, bearer};
use crate::daemon::Daemon;
use crate::metrics::{MetricType, PromText};

pub use live::LiveFeed;
pub use preview::{MAX_DOWNSAMPLE, PanelLimits, PreviewTaps};

/// The page, its script and its style sheet, built into the binary (the page works offline).
const INDEX_HTML: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const STYLE_CSS: &str = include_str!("../../web/style.css");

/// How long shutdown waits for pages to close their connections.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Largest message a page may send on a preview socket.
pub const MAX_CLIENT_MESSAGE_BYTES: usize = 16 << 10;

#[derive(Clone)]
struct AppState {
    daemon: Arc<Daemon>,
    taps: Arc<PreviewTaps>,
    feed: Arc<LiveFeed>,
    closing: watch::Receiver<bool>,
    limits: PanelLimits,
}

/// The routes, for `daemon`, each behind `access`; `closing` turning true ends every open
/// stream.
fn router(daemon: Arc<Daemon>, access: Arc<Access>, closing: watch::Receiver<bool>) -> Router {
    let state = AppState {
        taps: PreviewTaps::new(daemon.clone()),
        feed: LiveFeed::start(&daemon, closing.clone()),
        limits: PanelLimits {
            max_side: daemon.config().http.preview_max_side,
            min_interval: std::time::Duration::from_secs_f64(
                1.0 / daemon.config().http.preview_max_fps,
            ),
        },
        daemon,
        closing,
    };
    // The data needs a token; the page's own files hold none and load without one (a browser
    // cannot add the token to `<script>` and `<link>` requests).
    let data = Router::new()
        .route("/api/status", get(status))
        .route("/api/live", get(live))
        .route("/ws/preview", get(preview_socket))
        .route("/metrics", get(metrics))
        .route_layer(axum::middleware::from_fn_with_state(access, authorize));
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
        )
        .merge(data)
        .with_state(state)
}

/// Every endpoint here only reads: a `read` (or `control`) token is enough, from an
/// `Authorization: Bearer` header (Prometheus, scripts) or a `token` query parameter (the
/// page, which cannot set headers on EventSource and WebSocket requests).
async fn authorize(
    State(access): State<Arc<Access>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    let query = request.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix("token="))
            .filter(|t| !t.is_empty())
    });
    match access.check(header.or(query), Role::Read) {
        Ok(()) => next.run(request).await,
        Err(denied) => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            format!("{denied}, or open the page as /?token=<token>\n"),
        )
            .into_response(),
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn status(State(s): State<AppState>) -> Response {
    let body = live::status_json(&s.daemon).to_string();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn live(State(s): State<AppState>) -> impl IntoResponse {
    s.feed.page_stream(s.daemon.clone(), s.closing.clone())
}

async fn preview_socket(State(s): State<AppState>, ws: WebSocketUpgrade) -> Response {
    // A panel only ever sends small JSON settings.
    ws.max_message_size(MAX_CLIENT_MESSAGE_BYTES)
        .on_upgrade(move |socket| preview::session(socket, s.taps, s.limits, s.closing))
}

async fn metrics(State(s): State<AppState>) -> Response {
    let daemon = s.daemon.clone();
    let taps = s.taps.clone();
    let text = tokio::task::spawn_blocking(move || render_metrics(&daemon, &taps)).await;
    match text {
        Ok(text) => ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The daemon's metrics plus the previews' own.
fn render_metrics(daemon: &Daemon, taps: &PreviewTaps) -> String {
    let mut p = PromText::default();
    let provider = daemon.config().inference.provider.name();
    crate::metrics::write_status(&mut p, &daemon.status(), &daemon.rules().list(), provider);
    let counters = taps.counters();
    p.family(
        "scopepilot_preview_viewers",
        MetricType::Gauge,
        "Browser panels watching a stream now.",
    );
    for (stream, viewers, _) in &counters {
        p.sample(
            "scopepilot_preview_viewers",
            &[("stream", stream)],
            *viewers as f64,
        );
    }
    p.family(
        "scopepilot_preview_frames_sent_total",
        MetricType::Counter,
        "Frames sent to browser panels (latest-only: frames a page was not ready for are \
         skipped by design, not lost).",
    );
    for (stream, _, sent) in &counters {
        p.sample(
            "scopepilot_preview_frames_sent_total",
            &[("stream", stream)],
            *sent as f64,
        );
    }
    p.finish()
}

/// Resolves once `closing` turns true (or its sender is gone).
async fn closed(closing: &mut watch::Receiver<bool>) {
    let _ = closing.wait_for(|c| *c).await;
}

/// Serve the page and metrics on `listener` until `shutdown` completes.
pub async fn serve(
    daemon: Arc<Daemon>,
    security: Security,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (closing_tx, closing) = watch::channel(false);
    let mut closed_rx = closing.clone();
    let app = router(daemon, security.access, closing);
    let shutdown = async move {
        shutdown.await;
        let _ = closing_tx.send(true);
    };
    let server = async move {
        match security.tls {
            Some(tls) => {
                let listener = crate::tls::TlsListener::new(listener, tls.acceptor())?;
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
            None => {
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
        }
    };
    let grace = async move {
        closed(&mut closed_rx).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        result = server => result,
        _ = grace => Ok(()),
    }
}
