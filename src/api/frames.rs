//! `scopepilot.v1.Frames`: PushFrames (client streaming) and SubscribeFrames (server
//! streaming).
//!
//! A subscription runs on a thread of its own that waits on the subscriber's queue, takes each
//! frame's encoding (downsampling, 8-bit preview) from the stream's [`SharedEncodings`], made
//! once per shape for all subscribers, and hands it to the gRPC stream. A slow client fills
//! only its own queue, whose oldest frames are then dropped and counted. A client may cap its
//! frame rate (`max_fps`); the frames it leaves out are counted as skipped.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::watch;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::convert::{pixel_type_from_proto, pixel_type_to_proto};
use crate::daemon::Daemon;
use crate::proto::{self, frames_server};
use crate::sink::preview::PreviewOptions;
use crate::sink::shared_encoding::SharedEncodings;
use crate::sink::subscribers::Subscription;
use crate::source::push::{PushResult, PushedFrame};

/// The Frames service.
pub struct FramesApi {
    daemon: Arc<Daemon>,
    closing: watch::Receiver<bool>,
    /// Per stream, while someone subscribes to it (the subscriptions hold the `Arc`s).
    encodings: Mutex<HashMap<String, Weak<SharedEncodings>>>,
}

impl FramesApi {
    /// A service for `daemon`; its streams end when `closing` becomes true.
    pub fn new(daemon: Arc<Daemon>, closing: watch::Receiver<bool>) -> Self {
        Self {
            daemon,
            closing,
            encodings: Mutex::default(),
        }
    }

    /// The shared encodings of `stream`, made when its first subscriber comes.
    fn encodings(&self, stream: &str) -> Arc<SharedEncodings> {
        let mut map = self.encodings.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, w| w.strong_count() > 0);
        if let Some(e) = map.get(stream).and_then(Weak::upgrade) {
            return e;
        }
        let e = Arc::new(SharedEncodings::new());
        map.insert(stream.to_string(), Arc::downgrade(&e));
        e
    }
}

fn shutting_down() -> Status {
    Status::unavailable("scopepilot is shutting down")
}

/// Resolves once the server starts shutting down.
async fn closed(mut closing: watch::Receiver<bool>) {
    let _ = closing.wait_for(|c| *c).await;
}

type FrameStream = Pin<Box<dyn Stream<Item = Result<proto::Frame, Status>> + Send>>;

/// Largest downsampling factor accepted.
const MAX_DOWNSAMPLE: u32 = 64;

fn preview_options(req: &proto::SubscribeFramesRequest) -> Result<PreviewOptions, Status> {
    let eight_bit = match proto::FrameFormat::try_from(req.format) {
        Ok(proto::FrameFormat::Unspecified | proto::FrameFormat::Full) => false,
        Ok(proto::FrameFormat::Preview8bit) => true,
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "unknown format {}",
                req.format
            )));
        }
    };
    if req.downsample > MAX_DOWNSAMPLE {
        return Err(Status::invalid_argument(format!(
            "downsample {} exceeds the maximum of {MAX_DOWNSAMPLE}",
            req.downsample
        )));
    }
    let mut opts = PreviewOptions {
        downsample: req.downsample.max(1),
        eight_bit,
        ..PreviewOptions::default()
    };
    if req.low_percentile != 0.0 || req.high_percentile != 0.0 {
        let (lo, hi) = (req.low_percentile, req.high_percentile);
        if !((0.0..100.0).contains(&lo) && lo < hi && hi <= 100.0) {
            return Err(Status::invalid_argument(format!(
                "percentiles must satisfy 0 <= low < high <= 100, got {lo} and {hi}"
            )));
        }
        opts.low_percentile = lo;
        opts.high_percentile = hi;
    }
    Ok(opts)
}

/// Pump frames from a subscription into a gRPC stream until either side goes away.
fn pump(
    sub: Subscription,
    opts: PreviewOptions,
    encodings: Arc<SharedEncodings>,
    tx: tokio::sync::mpsc::Sender<Result<proto::Frame, Status>>,
) {
    let stage = sub.stage().to_string();
    loop {
        match sub.recv_with_skipped_timeout(Duration::from_millis(100)) {
            Ok((frame, skipped)) => {
                let enc = encodings.encode(&frame, &opts);
                let meta = frame.meta();
                let msg = proto::Frame {
                    stage: stage.clone(),
                    frame_number: meta.frame_number,
                    timestamp_ns: meta.camera_timestamp_ns,
                    width: enc.width,
                    height: enc.height,
                    pixel_type: pixel_type_to_proto(enc.pixel_type) as i32,
                    data: enc.data.clone(),
                    synthetic: meta.synthetic,
                    latency_us: meta.arrival.elapsed().as_micros() as u64,
                    display_min: enc.display_min,
                    display_max: enc.display_max,
                    subscriber_dropped: sub.stats().dropped.load(Ordering::Relaxed),
                    subscriber_skipped: skipped,
                    exposure_us: meta.exposure_us,
                };
                drop(frame); // release the pooled buffer before waiting on the client
                if tx.blocking_send(Ok(msg)).is_err() {
                    break; // client gone
                }
            }
            Err(true) if tx.is_closed() => break,
            Err(true) => {}
            Err(false) => break,
        }
    }
}

/// The frame a `PushFrames` message carries, borrowing its pixel bytes; an error (naming the
/// frame number) when the message cannot even be read as a frame (unknown pixel type).
/// Dimensions and byte counts are checked afterwards, by the push source.
pub fn pushed_frame(msg: &proto::PushFramesRequest) -> Result<PushedFrame<'_>, String> {
    let pixel_type = pixel_type_from_proto(msg.pixel_type)
        .map_err(|e| format!("frame {}: {e}", msg.frame_number))?;
    Ok(PushedFrame {
        width: msg.width,
        height: msg.height,
        pixel_type,
        frame_number: msg.frame_number,
        timestamp_ns: msg.timestamp_ns,
        exposure_us: msg.exposure_us,
        data: &msg.data,
    })
}

#[tonic::async_trait]
impl frames_server::Frames for FramesApi {
    async fn push_frames(
        &self,
        request: Request<Streaming<proto::PushFramesRequest>>,
    ) -> Result<Response<proto::PushFramesResponse>, Status> {
        let handle = self.daemon.push_handle()?;
        let mut stream = request.into_inner();
        let mut summary = proto::PushFramesResponse::default();
        loop {
            let msg = tokio::select! {
                msg = stream.message() => msg?,
                _ = closed(self.closing.clone()) => return Err(shutting_down()),
            };
            let Some(msg) = msg else { break };
            let frame = pushed_frame(&msg).map_err(|e| handle.reject(e))?;
            match handle.push(&frame)? {
                PushResult::Queued => summary.frames_accepted += 1,
                PushResult::DroppedByRing => {
                    summary.frames_accepted += 1;
                    summary.frames_dropped += 1;
                }
                PushResult::LostNoBuffer => summary.frames_lost_no_buffer += 1,
            }
        }
        Ok(Response::new(summary))
    }

    type SubscribeFramesStream = FrameStream;

    async fn subscribe_frames(
        &self,
        request: Request<proto::SubscribeFramesRequest>,
    ) -> Result<Response<Self::SubscribeFramesStream>, Status> {
        let req = request.into_inner();
        let opts = preview_options(&req)?;
        // 0 = every frame; the daemon refuses a rate outside MAX_FPS_RANGE, naming max_fps.
        let max_fps = (req.max_fps != 0.0).then_some(f64::from(req.max_fps));
        let stage = if req.stage.is_empty() {
            crate::pipeline::RAW
        } else {
            req.stage.as_str()
        };
        let sub = self
            .daemon
            .subscribe_at_most(stage, req.queue_capacity as usize, max_fps)?;
        let encodings = self.encodings(stage);
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let name = format!("subscriber-{}", sub.id());
        std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                crate::thread_nice::lower_current_thread(
                    &name,
                    crate::thread_nice::SUBSCRIBER_NICE,
                );
                pump(sub, opts, encodings, tx)
            })
            .map_err(|e| {
                Status::resource_exhausted(format!("cannot start a subscriber thread: {e}"))
            })?;
        // End the stream with UNAVAILABLE at shutdown, even for a client that stopped reading.
        let closing = tokio_stream::once(()).then({
            let closing = self.closing.clone();
            move |_| {
                let closing = closing.clone();
                async move {
                    closed(closing).await;
                    Err(shutting_down())
                }
            }
        });
        Ok(Response::new(Box::pin(
            ReceiverStream::new(rx).merge(closing),
        )))
    }
}
