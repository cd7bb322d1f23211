//! The page's live feed: `GET /api/live`, Server-Sent Events carrying a `hello` (status plus
//! the recent events and actions), then `status` every second and every `detection` and
//! `action` as it happens.
//!
//! One [`LiveFeed`] per daemon subscribes to the rule engine once, remembers the last
//! [`RECENT`] events and actions for pages that connect later, and rebroadcasts them to every
//! open page. A page that falls behind skips messages (and is told how many); it never slows
//! the engine.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::IntoResponse;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use super::json;
use crate::daemon::Daemon;

/// Events and actions a page sees when it connects.
pub const RECENT: usize = 50;

/// How often pages get a status update.
pub const STATUS_PERIOD: Duration = Duration::from_secs(1);

/// A message for every open page.
#[derive(Clone)]
struct LiveItem {
    kind: &'static str,
    data: Arc<Value>,
}

/// Recent events and actions, and their live rebroadcast.
pub struct LiveFeed {
    recent_events: Mutex<VecDeque<Value>>,
    recent_actions: Mutex<VecDeque<Value>>,
    items: broadcast::Sender<LiveItem>,
}

fn remember(list: &Mutex<VecDeque<Value>>, v: Value) {
    let mut l = list.lock().unwrap_or_else(|e| e.into_inner());
    if l.len() == RECENT {
        l.pop_front();
    }
    l.push_back(v);
}

impl LiveFeed {
    /// Subscribe to `daemon`'s events and actions until `closing` turns true.
    pub fn start(daemon: &Daemon, mut closing: watch::Receiver<bool>) -> Arc<Self> {
        let feed = Arc::new(Self {
            recent_events: Mutex::new(VecDeque::new()),
            recent_actions: Mutex::new(VecDeque::new()),
            items: broadcast::channel(256).0,
        });
        let mut events = daemon.rules().subscribe_events(1024);
        let mut actions = daemon.rules().subscribe_actions(1024);
        let f = feed.clone();
        tokio::spawn(async move {
            loop {
                let (kind, data, list) = tokio::select! {
                    Some(e) = events.recv() => ("detection", json::event(&e), &f.recent_events),
                    Some(a) = actions.recv() => ("action", json::action(&a), &f.recent_actions),
                    _ = super::closed(&mut closing) => break,
                    else => break,
                };
                remember(list, data.clone());
                let _ = f.items.send(LiveItem {
                    kind,
                    data: Arc::new(data),
                });
            }
        });
        feed
    }

    fn recent(list: &Mutex<VecDeque<Value>>) -> Vec<Value> {
        list.lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// The SSE stream of one page.
    pub fn page_stream(
        self: &Arc<Self>,
        daemon: Arc<Daemon>,
        mut closing: watch::Receiver<bool>,
    ) -> impl IntoResponse + use<> {
        let (tx, rx) = mpsc::channel::<Result<SseEvent, Infallible>>(16);
        let mut items = self.items.subscribe();
        let hello = json!({
            "status": status_json(&daemon),
            "recent_events": Self::recent(&self.recent_events),
            "recent_actions": Self::recent(&self.recent_actions),
        });
        tokio::spawn(async move {
            let send = |kind: &str, data: &Value| {
                tx.send(Ok(SseEvent::default().event(kind).data(data.to_string())))
            };
            if send("hello", &hello).await.is_err() {
                return;
            }
            let mut tick = tokio::time::interval(STATUS_PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            tick.tick().await;
            loop {
                let sent = tokio::select! {
                    _ = tick.tick() => send("status", &status_json(&daemon)).await,
                    item = items.recv() => match item {
                        Ok(item) => send(item.kind, &item.data).await,
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            send("lagged", &json!({ "skipped": n })).await
                        }
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                    _ = super::closed(&mut closing) => break,
                };
                if sent.is_err() {
                    break; // the page went away
                }
            }
        });
        Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::default())
    }
}

/// The page's status JSON, now.
pub fn status_json(daemon: &Daemon) -> Value {
    json::status(&daemon.status(), &daemon.streams(), &daemon.rules().list())
}
