//! `scopepilot.v1.Events`: SubscribeEvents and SubscribeActions (server streaming),
//! AcknowledgeAction, ListGroundTruth.
//!
//! Each subscriber has its own bounded queue in the rule engine; a client that reads too
//! slowly loses items from its own queue only, and every item it receives says how many it
//! lost so far (`subscriber_dropped`).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::watch;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::convert::{action_to_proto, event_to_proto};
use crate::clock::WallClock;
use crate::daemon::Daemon;
use crate::events::fanout::FanoutReceiver;
use crate::proto::{self, events_server::Events};
use crate::rules::engine::AckError;

/// Queue size of a subscriber that does not choose one.
pub const DEFAULT_QUEUE: usize = 256;

/// Largest queue a subscriber may ask for.
pub const MAX_QUEUE: usize = 65_536;

type Streamed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The Events service.
pub struct EventsApi {
    daemon: Arc<Daemon>,
    closing: watch::Receiver<bool>,
}

impl EventsApi {
    /// A service for `daemon`; its streams end when `closing` becomes true.
    pub fn new(daemon: Arc<Daemon>, closing: watch::Receiver<bool>) -> Self {
        Self { daemon, closing }
    }

    /// `stream` until the server shuts down, then UNAVAILABLE.
    fn until_closing<T: Send + 'static>(
        &self,
        stream: impl Stream<Item = Result<T, Status>> + Send + 'static,
    ) -> Streamed<T> {
        let closing = self.closing.clone();
        let end = tokio_stream::once(()).then(move |_| {
            let mut closing = closing.clone();
            async move {
                let _ = closing.wait_for(|c| *c).await;
                Err(Status::unavailable("scopepilot is shutting down"))
            }
        });
        Box::pin(stream.merge(end))
    }
}

fn queue_size(requested: u32) -> Result<usize, Status> {
    match requested as usize {
        0 => Ok(DEFAULT_QUEUE),
        n if n > MAX_QUEUE => Err(Status::invalid_argument(format!(
            "queue_capacity {n} exceeds the maximum of {MAX_QUEUE}"
        ))),
        n => Ok(n),
    }
}

/// The items of `sub` that `keep` accepts, as messages made by `to_proto` (given the
/// subscriber's loss count so far).
fn messages<T: Send + 'static, M>(
    sub: FanoutReceiver<T>,
    keep: impl Fn(&T) -> bool + Send + 'static,
    to_proto: impl Fn(&T, &WallClock, u64) -> M + Send + 'static,
) -> impl Stream<Item = Result<M, Status>> + Send + 'static {
    let (rx, dropped) = sub.into_parts();
    let clock = WallClock::now();
    ReceiverStream::new(rx)
        .filter(move |item| keep(item))
        .map(move |item| Ok(to_proto(&item, &clock, dropped.load(Ordering::Relaxed))))
}

#[tonic::async_trait]
impl Events for EventsApi {
    type SubscribeEventsStream = Streamed<proto::Event>;

    async fn subscribe_events(
        &self,
        request: Request<proto::SubscribeEventsRequest>,
    ) -> Result<Response<Self::SubscribeEventsStream>, Status> {
        let req = request.into_inner();
        let capacity = queue_size(req.queue_capacity)?;
        let rules = self.daemon.rules();
        let ctx = rules.context();
        for d in &req.detectors {
            if d != crate::rules::GROUND_TRUTH_DETECTOR
                && !ctx.detectors.iter().any(|(n, _)| n == d)
            {
                return Err(Status::invalid_argument(format!(
                    "no detector named {d:?}; detectors: {}",
                    ctx.detectors
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .chain([crate::rules::GROUND_TRUTH_DETECTOR])
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        let keep = move |e: &crate::events::Event| {
            (req.include_ground_truth || !e.ground_truth)
                && (req.kinds.is_empty() || req.kinds.iter().any(|k| **k == *e.kind))
                && (req.detectors.is_empty() || req.detectors.iter().any(|d| **d == *e.detector))
        };
        let stream = messages(
            rules.subscribe_events(capacity),
            keep,
            |e, clock, dropped| proto::Event {
                subscriber_dropped: dropped,
                ..event_to_proto(e, clock)
            },
        );
        Ok(Response::new(self.until_closing(stream)))
    }

    type SubscribeActionsStream = Streamed<proto::Action>;

    async fn subscribe_actions(
        &self,
        request: Request<proto::SubscribeActionsRequest>,
    ) -> Result<Response<Self::SubscribeActionsStream>, Status> {
        let req = request.into_inner();
        let capacity = queue_size(req.queue_capacity)?;
        let keep =
            move |a: &crate::rules::Action| req.names.is_empty() || req.names.contains(&a.name);
        let stream = messages(
            self.daemon.rules().subscribe_actions(capacity),
            keep,
            |a, clock, dropped| proto::Action {
                subscriber_dropped: dropped,
                ..action_to_proto(a, clock)
            },
        );
        Ok(Response::new(self.until_closing(stream)))
    }

    async fn acknowledge_action(
        &self,
        request: Request<proto::AcknowledgeActionRequest>,
    ) -> Result<Response<proto::AcknowledgeActionResponse>, Status> {
        let r = request.into_inner();
        match self
            .daemon
            .rules()
            .acknowledge(r.action_id, r.success, &r.message)
        {
            Ok(elapsed) => Ok(Response::new(proto::AcknowledgeActionResponse {
                round_trip_ms: elapsed.as_secs_f64() * 1e3,
            })),
            Err(e @ AckError::NotFound(_)) => Err(Status::not_found(e.to_string())),
            Err(e @ AckError::Already(_)) => Err(Status::already_exists(e.to_string())),
        }
    }

    async fn list_ground_truth(
        &self,
        request: Request<proto::ListGroundTruthRequest>,
    ) -> Result<Response<proto::ListGroundTruthResponse>, Status> {
        let from = request.into_inner().from_frame;
        let status = self.daemon.status();
        if status.source != crate::config::SourceKind::Simulated.name() {
            return Err(Status::failed_precondition(format!(
                "ground truth comes from the simulated camera; the {} source has none",
                if status.source.is_empty() {
                    "(no)"
                } else {
                    &status.source
                }
            )));
        }
        let clock = WallClock::now();
        let divisions = self
            .daemon
            .rules()
            .ground_truth(from)
            .iter()
            .map(|e| event_to_proto(e, &clock))
            .collect();
        Ok(Response::new(proto::ListGroundTruthResponse { divisions }))
    }
}
