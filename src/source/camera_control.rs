//! Camera settings (exposure, gain, region, binning) and their run-time changes.
//!
//! A camera object belongs to the camera thread, so the API never touches it: it sends a
//! [`CameraSettings`] request through a [`CameraControl`] and waits; the camera thread
//! takes the request between two frames ([`CameraControlServer::try_next`], one
//! non-blocking channel poll per frame) and answers with what the camera reports afterwards.

use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};

/// Exposure, gain, region and binning of a camera. `None` means "leave as it is" in a
/// request and "unknown" in a readout.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CameraSettings {
    /// Exposure time, microseconds.
    pub exposure_us: Option<f64>,
    /// Gain in the camera's unit (usually dB).
    pub gain: Option<f64>,
    /// Region of interest `[x, y, width, height]` in (binned) sensor pixels.
    pub roi: Option<[u32; 4]>,
    /// Binning, the same horizontally and vertically.
    pub binning: Option<u32>,
}

impl CameraSettings {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Whether these settings change the frame size (region or binning). The running
    /// pipeline is built for one frame size, so such changes wait for the next acquisition.
    pub fn changes_frame_size(&self) -> bool {
        self.roi.is_some() || self.binning.is_some()
    }

    /// `self` with every setting that `newer` sets replaced by it.
    pub fn merged(self, newer: CameraSettings) -> Self {
        Self {
            exposure_us: newer.exposure_us.or(self.exposure_us),
            gain: newer.gain.or(self.gain),
            roi: newer.roi.or(self.roi),
            binning: newer.binning.or(self.binning),
        }
    }

    /// Every problem with these values as `(key, problem)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(e) = self.exposure_us
            && !(e > 0.0 && e <= 3.6e9)
        {
            out.push((
                "exposure_us",
                format!("must be in (0, 3.6e9] microseconds, got {e}"),
            ));
        }
        if let Some(g) = self.gain
            && !(g.is_finite() && g >= 0.0)
        {
            out.push(("gain", format!("must be a finite number >= 0, got {g}")));
        }
        if let Some([x, y, w, h]) = self.roi {
            if w == 0 || h == 0 {
                out.push((
                    "roi",
                    format!("width and height must be at least 1, got [{x}, {y}, {w}, {h}]"),
                ));
            } else if (x as u64 + w as u64) > 65_536 || (y as u64 + h as u64) > 65_536 {
                out.push((
                    "roi",
                    format!("[{x}, {y}, {w}, {h}] reaches past 65536 pixels"),
                ));
            }
        }
        if let Some(b) = self.binning
            && !(1..=16).contains(&b)
        {
            out.push(("binning", format!("must be 1..=16, got {b}")));
        }
        out
    }
}

/// Why a [`CameraControl::apply`] did not go through.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CameraControlError {
    /// The camera refused a value (out of its range, not writable...).
    #[error("the camera refused the settings: {0}")]
    Rejected(String),
    /// The acquisition ended before the camera thread took the request.
    #[error("the acquisition stopped before the camera applied the settings")]
    Stopped,
    /// The camera thread did not answer in time (it is stuck in a camera call).
    #[error("the camera thread did not answer within {0:?}")]
    Timeout(Duration),
}

/// One request taken by the camera thread; answer it with [`SettingsRequest::answer`].
pub struct SettingsRequest {
    /// What to change.
    pub settings: CameraSettings,
    reply: Sender<Result<CameraSettings, String>>,
}

impl SettingsRequest {
    /// Send the outcome: the camera's settings afterwards, or why it refused.
    pub fn answer(self, outcome: Result<CameraSettings, String>) {
        // The asker may have given up (timeout); nothing to do then.
        let _ = self.reply.send(outcome);
    }
}

/// The API's end: asks the camera thread to apply settings. Cheap to clone.
#[derive(Clone)]
pub struct CameraControl {
    requests: Sender<SettingsRequest>,
}

impl std::fmt::Debug for CameraControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CameraControl").finish_non_exhaustive()
    }
}

/// The camera thread's end.
pub struct CameraControlServer {
    requests: Receiver<SettingsRequest>,
}

/// A connected pair: the source keeps the server and hands out clones of the control.
pub fn camera_control() -> (CameraControl, CameraControlServer) {
    // Requests are rare and each waits for its answer: a few slots are plenty.
    let (tx, rx) = bounded(4);
    (
        CameraControl { requests: tx },
        CameraControlServer { requests: rx },
    )
}

impl CameraControl {
    /// Have the camera thread apply `settings`; returns what the camera reports afterwards.
    /// Blocks the caller (never the camera thread) for at most about `timeout`.
    pub fn apply(
        &self,
        settings: CameraSettings,
        timeout: Duration,
    ) -> Result<CameraSettings, CameraControlError> {
        let (reply, answer) = bounded(1);
        self.requests
            .send_timeout(SettingsRequest { settings, reply }, timeout)
            .map_err(|e| match e {
                crossbeam_channel::SendTimeoutError::Timeout(_) => {
                    CameraControlError::Timeout(timeout)
                }
                crossbeam_channel::SendTimeoutError::Disconnected(_) => CameraControlError::Stopped,
            })?;
        match answer.recv_timeout(timeout) {
            Ok(result) => result.map_err(CameraControlError::Rejected),
            Err(RecvTimeoutError::Timeout) => Err(CameraControlError::Timeout(timeout)),
            Err(RecvTimeoutError::Disconnected) => Err(CameraControlError::Stopped),
        }
    }
}

impl CameraControlServer {
    /// The next pending request, if any (camera thread, between frames; never blocks).
    pub fn try_next(&self) -> Option<SettingsRequest> {
        self.requests.try_recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_keeps_what_the_newer_settings_leave_unset() {
        let old = CameraSettings {
            exposure_us: Some(10_000.0),
            gain: Some(2.0),
            roi: Some([0, 0, 64, 64]),
            binning: None,
        };
        let new = CameraSettings {
            exposure_us: Some(20_000.0),
            binning: Some(2),
            ..Default::default()
        };
        let m = old.merged(new);
        assert_eq!(m.exposure_us, Some(20_000.0));
        assert_eq!(m.gain, Some(2.0));
        assert_eq!(m.roi, Some([0, 0, 64, 64]));
        assert_eq!(m.binning, Some(2));
        assert!(new.changes_frame_size());
        assert!(!CameraSettings::default().changes_frame_size());
        assert!(CameraSettings::default().is_empty());
    }

    #[test]
    fn problems_name_each_bad_key() {
        let bad = CameraSettings {
            exposure_us: Some(-1.0),
            gain: Some(f64::NAN),
            roi: Some([0, 0, 0, 8]),
            binning: Some(17),
        };
        let keys: Vec<_> = bad.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["exposure_us", "gain", "roi", "binning"]);
        let far = CameraSettings {
            roi: Some([65_000, 0, 1000, 8]),
            ..Default::default()
        };
        assert_eq!(far.problems()[0].0, "roi");
    }

    #[test]
    fn the_camera_thread_answers_between_frames() {
        let (control, server) = camera_control();
        let camera = std::thread::spawn(move || {
            let mut exposure = 10_000.0;
            let mut served = 0;
            while served < 2 {
                while let Some(request) = server.try_next() {
                    served += 1;
                    let outcome = match request.settings.exposure_us {
                        Some(e) if e > 1e6 => Err(format!("exposure {e} is above 1e6 us")),
                        Some(e) => {
                            exposure = e;
                            Ok(CameraSettings {
                                exposure_us: Some(exposure),
                                ..Default::default()
                            })
                        }
                        None => Ok(CameraSettings::default()),
                    };
                    request.answer(outcome);
                }
                std::thread::sleep(Duration::from_millis(1)); // "a frame"
            }
            exposure
        });
        let ask = |e: f64| {
            control.apply(
                CameraSettings {
                    exposure_us: Some(e),
                    ..Default::default()
                },
                Duration::from_secs(10),
            )
        };
        assert_eq!(ask(20_000.0).unwrap().exposure_us, Some(20_000.0));
        assert!(matches!(ask(2e6), Err(CameraControlError::Rejected(m)) if m.contains("above")));
        assert_eq!(camera.join().unwrap(), 20_000.0);
        // The camera thread is gone: its end of the channel with it.
        assert_eq!(ask(1.0), Err(CameraControlError::Stopped));
    }

    #[test]
    fn a_camera_thread_that_never_polls_times_out() {
        let (control, _server) = camera_control();
        let r = control.apply(CameraSettings::default(), Duration::from_millis(20));
        assert_eq!(
            r,
            Err(CameraControlError::Timeout(Duration::from_millis(20)))
        );
    }
}
