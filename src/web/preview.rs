//! Live images for the page: `GET /ws/preview`, one WebSocket per image panel.
//!
//! Latest-only with credit flow control. The page sends `{"type":"config", ...}` (stream,
//! contrast, downsampling) and one `{"type":"ready"}` per frame it is ready to draw; the
//! session answers each credit with the newest frame of its stream, rendered to 8 bits on a
//! blocking-pool thread. Frames reach the session through a [`LatestFrame`] sink attached to
//! the stream only while someone watches it, so a slow browser gets fewer frames and costs
//! the pipeline one pointer swap per frame.
//!
//! A binary message is a little-endian `u32` header length, the JSON header, then
//! `width * height` grey bytes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::ws::{Message, WebSocket};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;

use crate::daemon::Daemon;
use crate::frame::Frame;
use crate::sink::latest::LatestFrame;
use crate::sink::preview::{PreviewOptions, encode};

/// Largest block-averaging factor a page may ask for.
pub const MAX_DOWNSAMPLE: u32 = 16;

/// What the daemon allows one panel.
#[derive(Debug, Clone, Copy)]
pub struct PanelLimits {
    /// Longest side of an automatically downsampled image.
    pub max_side: u32,
    /// Shortest time between two frames sent to the panel.
    pub min_interval: std::time::Duration,
}

/// Counters of the previews of one stream.
#[derive(Default)]
pub struct PreviewCounters {
    /// Pages watching now.
    pub viewers: AtomicU64,
    /// Frames sent to pages.
    pub frames_sent: AtomicU64,
}

struct Tap {
    latest: Arc<LatestFrame>,
    sink_id: Option<u64>,
    counters: Arc<PreviewCounters>,
}

/// The [`LatestFrame`] sinks of watched streams, attached on the first viewer and detached
/// after the last.
pub struct PreviewTaps {
    daemon: Arc<Daemon>,
    taps: Mutex<HashMap<String, Tap>>,
}

/// One page's hold on a stream; detaches the sink when the last viewer goes.
pub struct Viewer {
    taps: Arc<PreviewTaps>,
    stream: String,
    latest: Arc<LatestFrame>,
    counters: Arc<PreviewCounters>,
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let mut taps = self.taps.lock();
        if let Some(tap) = taps.get_mut(&self.stream) {
            if tap.counters.viewers.fetch_sub(1, Ordering::Relaxed) == 1 {
                if let Some(id) = tap.sink_id.take() {
                    self.taps.daemon.detach_sink(&self.stream, id);
                }
                tap.latest.clear();
            }
        }
    }
}

impl PreviewTaps {
    /// No stream watched yet.
    pub fn new(daemon: Arc<Daemon>) -> Arc<Self> {
        Arc::new(Self {
            daemon,
            taps: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Tap>> {
        self.taps.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Start watching `stream`.
    pub fn watch(self: &Arc<Self>, stream: &str) -> Result<Viewer, String> {
        let mut taps = self.lock();
        let tap = taps.entry(stream.to_string()).or_insert_with(|| Tap {
            latest: Arc::new(LatestFrame::default()),
            sink_id: None,
            counters: Arc::default(),
        });
        if tap.sink_id.is_none() {
            let id = self
                .daemon
                .attach_sink(stream, tap.latest.clone())
                .map_err(|e| e.to_string())?;
            tap.sink_id = Some(id);
        }
        tap.counters.viewers.fetch_add(1, Ordering::Relaxed);
        Ok(Viewer {
            taps: self.clone(),
            stream: stream.to_string(),
            latest: tap.latest.clone(),
            counters: tap.counters.clone(),
        })
    }

    /// (stream, viewers, frames sent) of every stream ever watched, sorted by stream.
    pub fn counters(&self) -> Vec<(String, u64, u64)> {
        let mut out: Vec<_> = self
            .lock()
            .iter()
            .map(|(name, t)| {
                (
                    name.clone(),
                    t.counters.viewers.load(Ordering::Relaxed),
                    t.counters.frames_sent.load(Ordering::Relaxed),
                )
            })
            .collect();
        out.sort();
        out
    }
}

/// What a page asks of its panel.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientMessage {
    /// Settings of the panel.
    Config {
        stream: String,
        #[serde(default = "auto")]
        contrast: String,
        #[serde(default = "low")]
        low: f32,
        #[serde(default = "high")]
        high: f32,
        #[serde(default)]
        min: f32,
        #[serde(default)]
        max: f32,
        #[serde(default)]
        downsample: u32,
    },
    /// One more frame, please.
    Ready,
}

fn auto() -> String {
    "auto".into()
}
fn low() -> f32 {
    PreviewOptions::default().low_percentile
}
fn high() -> f32 {
    PreviewOptions::default().high_percentile
}

/// A panel's validated settings.
#[derive(Debug, Clone, PartialEq)]
struct PanelSettings {
    stream: String,
    /// 0 = automatic.
    downsample: u32,
    options: PreviewOptions,
}

fn settings(msg: ClientMessage) -> Result<Option<PanelSettings>, String> {
    let ClientMessage::Config {
        stream,
        contrast,
        low,
        high,
        min,
        max,
        downsample,
    } = msg
    else {
        return Ok(None);
    };
    if downsample > MAX_DOWNSAMPLE {
        return Err(format!(
            "downsample {downsample} exceeds the maximum of {MAX_DOWNSAMPLE} (0 = automatic)"
        ));
    }
    let mut options = PreviewOptions {
        eight_bit: true,
        ..PreviewOptions::default()
    };
    match contrast.as_str() {
        "auto" => {
            if !((0.0..100.0).contains(&low) && low < high && high <= 100.0) {
                return Err(format!(
                    "percentiles must satisfy 0 <= low < high <= 100, got {low} and {high}"
                ));
            }
            options.low_percentile = low;
            options.high_percentile = high;
        }
        "manual" => {
            if !(min.is_finite() && max.is_finite() && min < max) {
                return Err(format!(
                    "manual contrast needs min < max, got {min} and {max}"
                ));
            }
            options.window = Some((min, max));
        }
        other => {
            return Err(format!(
                "contrast must be \"auto\" or \"manual\", got {other:?}"
            ));
        }
    }
    Ok(Some(PanelSettings {
        stream,
        downsample,
        options,
    }))
}

/// Render `frame` for a panel: header and grey pixels in one message.
fn render(frame: &Frame, settings: &PanelSettings, max_side: u32) -> Vec<u8> {
    let (w, h) = (frame.width(), frame.height());
    let k = match settings.downsample {
        0 => w.max(h).div_ceil(max_side).max(1),
        k => k,
    };
    let enc = encode(
        frame,
        &PreviewOptions {
            downsample: k,
            ..settings.options
        },
    );
    let meta = frame.meta();
    let header = json!({
        "stream": settings.stream,
        "frame_number": meta.frame_number,
        "timestamp_ns": meta.camera_timestamp_ns,
        "width": enc.width,
        "height": enc.height,
        "source_width": w,
        "source_height": h,
        "downsample": k,
        "display_min": enc.display_min,
        "display_max": enc.display_max,
        "synthetic": meta.synthetic,
    })
    .to_string();
    let mut out = Vec::with_capacity(4 + header.len() + enc.data.len());
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&enc.data);
    out
}

async fn send_error(socket: &mut WebSocket, message: &str) -> bool {
    let text = json!({ "type": "error", "message": message }).to_string();
    socket.send(Message::Text(text.into())).await.is_ok()
}

/// Wait for a frame newer than the last one seen by `frames`; never returns without one.
async fn next_frame(frames: &mut Option<watch::Receiver<u64>>) {
    if let Some(rx) = frames {
        if rx.changed().await.is_ok() {
            return;
        }
    }
    std::future::pending::<()>().await
}

/// Serve one panel until the page closes it or the daemon shuts down.
pub async fn session(
    mut socket: WebSocket,
    taps: Arc<PreviewTaps>,
    limits: PanelLimits,
    mut closing: watch::Receiver<bool>,
) {
    let mut next_send = tokio::time::Instant::now();
    let mut current: Option<(PanelSettings, Viewer)> = None;
    let mut frames: Option<watch::Receiver<u64>> = None;
    let mut credits = 0u32;
    loop {
        tokio::select! {
            msg = socket.recv() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => continue,
                };
                let parsed = serde_json::from_str::<ClientMessage>(&text)
                    .map_err(|e| format!("bad message {text:?}: {e}"))
                    .and_then(settings);
                match parsed {
                    Ok(None) => credits = credits.saturating_add(1).min(4),
                    Ok(Some(s)) => {
                        let same_stream = current.as_ref().is_some_and(|(c, _)| c.stream == s.stream);
                        if same_stream {
                            if let Some((c, _)) = current.as_mut() {
                                *c = s;
                            }
                            // Re-render the newest frame with the new settings at once.
                            if let Some(rx) = frames.as_mut() {
                                rx.mark_changed();
                            }
                            continue;
                        }
                        match taps.watch(&s.stream) {
                            Ok(viewer) => {
                                let mut rx = viewer.latest.watch();
                                if viewer.latest.get().is_some() {
                                    rx.mark_changed();
                                }
                                frames = Some(rx);
                                current = Some((s, viewer));
                            }
                            Err(e) => {
                                if !send_error(&mut socket, &e).await {
                                    break;
                                }
                            }
                        }
                    }
                    Err(e) => {
                        if !send_error(&mut socket, &e).await {
                            break;
                        }
                    }
                }
            }
            _ = next_frame(&mut frames), if credits > 0 => {
                // At most one frame per min_interval; after the wait, still the newest one.
                tokio::time::sleep_until(next_send).await;
                let Some((s, viewer)) = current.as_ref() else { continue };
                let Some(frame) = viewer.latest.get() else { continue };
                let s = s.clone();
                next_send = tokio::time::Instant::now() + limits.min_interval;
                let rendered =
                    tokio::task::spawn_blocking(move || render(&frame, &s, limits.max_side)).await;
                let Ok(bytes) = rendered else { continue };
                if socket.send(Message::Binary(bytes.into())).await.is_err() {
                    break;
                }
                viewer.counters.frames_sent.fetch_add(1, Ordering::Relaxed);
                credits -= 1;
            }
            _ = super::closed(&mut closing) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{FrameMeta, FrameSpec, PixelType, Pixels};

    fn parse(text: &str) -> Result<Option<PanelSettings>, String> {
        serde_json::from_str::<ClientMessage>(text)
            .map_err(|e| e.to_string())
            .and_then(settings)
    }

    #[test]
    fn settings_are_validated_with_a_reason() {
        let ok = parse(r#"{"type":"config","stream":"raw","contrast":"manual","min":10,"max":20}"#)
            .unwrap()
            .unwrap();
        assert_eq!(ok.options.window, Some((10.0, 20.0)));
        assert!(parse(r#"{"type":"ready"}"#).unwrap().is_none());
        for (bad, why) in [
            (
                r#"{"type":"config","stream":"raw","low":50,"high":5}"#,
                "percentiles",
            ),
            (
                r#"{"type":"config","stream":"raw","contrast":"manual","min":5,"max":5}"#,
                "min < max",
            ),
            (
                r#"{"type":"config","stream":"raw","contrast":"gamma"}"#,
                "gamma",
            ),
            (
                r#"{"type":"config","stream":"raw","downsample":99}"#,
                "downsample",
            ),
            (r#"{"type":"dance"}"#, "dance"),
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn render_downsamples_to_the_longest_side_and_describes_the_frame() {
        let (w, h) = (2048u32, 1024u32);
        let px: Vec<u16> = (0..w * h).map(|i| (i % 4096) as u16).collect();
        let mut meta = FrameMeta::arriving_now(42, 7);
        meta.synthetic = true;
        let frame = Frame::standalone(FrameSpec::new(w, h, PixelType::U16), meta, Pixels::U16(px));
        let s = parse(r#"{"type":"config","stream":"raw"}"#)
            .unwrap()
            .unwrap();
        let bytes = render(&frame, &s, 1024);
        let n = u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
        let header: serde_json::Value = serde_json::from_slice(&bytes[4..4 + n]).unwrap();
        assert_eq!(header["frame_number"], 42);
        assert_eq!(header["synthetic"], true);
        assert_eq!(
            (header["width"].as_u64(), header["height"].as_u64()),
            (Some(1024), Some(512))
        );
        assert_eq!(header["downsample"], 2);
        assert_eq!(header["source_width"], 2048);
        assert_eq!(bytes.len(), 4 + n + 1024 * 512);
    }
}
