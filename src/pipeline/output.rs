//! `Output`: the fan-out at the end of a stage (or of the ingest ring) to the input queues of
//! downstream stages and to the stage's subscribers. Fan-out shares the frame by reference.

use std::sync::Arc;

use super::queue::QueueSender;
use crate::sink::subscribers::SubscriberHub;

/// Fan-out of one named stream.
pub struct Output {
    downstream: Vec<QueueSender>,
    subscribers: Arc<SubscriberHub>,
}

impl Output {
    /// Fan out to `downstream` stage queues and `subscribers`.
    pub fn new(downstream: Vec<QueueSender>, subscribers: Arc<SubscriberHub>) -> Self {
        Self {
            downstream,
            subscribers,
        }
    }

    /// Send a frame on: downstream queues apply their own policies, subscribers never block.
    pub fn publish(&self, frame: crate::frame::Frame) {
        for q in &self.downstream {
            q.send(frame.clone());
        }
        self.subscribers.publish(&frame);
    }
}
