//! The `genicam` source: GigE Vision and USB3 Vision cameras through Aravis.
//!
//! The settings (`[source.genicam]`) and the frame-id bookkeeping are always compiled, so a
//! configuration that names a GenICam camera parses on every build and a build without the
//! `genicam` cargo feature can say exactly what is missing. The camera itself
//! ([`GenicamSource`], in `camera.rs`) needs the feature and the Aravis C library
//! (`libaravis-dev`).
//!
//! Frames are copied once, from the Aravis buffer into a [`crate::frame::FramePool`] slot,
//! and the Aravis buffer goes straight back to the stream: nothing is allocated per frame,
//! and the camera thread never waits for the pipeline. The camera's frame id (16-bit on
//! GigE Vision, wrapping) is unwrapped into a monotonically increasing frame number
//! ([`FrameIdUnwrapper`]); gaps in it are frames the camera or the transport lost
//! (`frames_missing`), buffers Aravis hands back with missing packets or timeouts are counted
//! as `frames_incomplete` and never reach the pipeline.

#[cfg(feature = "genicam")]
mod camera;

#[cfg(feature = "genicam")]
pub use camera::{AravisStreamStats, GenicamSource};

use std::net::Ipv4Addr;

use serde::Deserialize;

use super::camera_control::CameraSettings;

/// True when this build can open GenICam cameras (the `genicam` cargo feature).
pub const AVAILABLE: bool = cfg!(feature = "genicam");

/// What a build without the `genicam` feature says when asked for the camera.
pub const NOT_BUILT: &str = "this scopepilot was built without GenICam support; rebuild with \
`cargo build --release --features genicam` (needs the Debian packages libaravis-dev and \
libusb-1.0-0-dev, see scripts/test-genicam.sh)";

/// Pixel format requested from the camera (`source.genicam.pixel_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum GenicamPixelFormat {
    /// 8-bit mono (`Mono8`).
    Mono8,
    /// 16-bit mono (`Mono16`; 10/12-bit sensors deliver their counts in 16-bit words).
    #[default]
    Mono16,
}

impl GenicamPixelFormat {
    /// The GenICam `PixelFormat` entry name.
    pub fn genicam_name(self) -> &'static str {
        match self {
            GenicamPixelFormat::Mono8 => "Mono8",
            GenicamPixelFormat::Mono16 => "Mono16",
        }
    }
}

/// Settings of the GenICam source (`[source.genicam]`).
///
/// Exactly one of `address`, `serial` and `name` picks the camera. Opening by IP address
/// talks to that address only; `serial` and `name` need Aravis's device discovery, which
/// broadcasts on every network interface.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenicamConfig {
    /// IPv4 address of a GigE Vision camera (recommended: no discovery broadcast).
    #[serde(default)]
    pub address: Option<String>,
    /// Serial number (GigE Vision or USB3 Vision), found by device discovery.
    #[serde(default)]
    pub serial: Option<String>,
    /// Aravis device id (`<vendor>-<serial>`, a user id, a MAC address), found by discovery.
    #[serde(default)]
    pub name: Option<String>,
    /// `mono8` or `mono16`.
    #[serde(default)]
    pub pixel_format: GenicamPixelFormat,
    /// Exposure time in microseconds (unset: leave the camera's setting).
    #[serde(default)]
    pub exposure_us: Option<f64>,
    /// Gain in the camera's unit, usually dB (unset: leave the camera's setting).
    #[serde(default)]
    pub gain: Option<f64>,
    /// Frames per second (`AcquisitionFrameRate`); changeable at run time with
    /// `SetFrameInterval` and by rules.
    #[serde(default = "default_rate")]
    pub frame_rate_hz: f64,
    /// Region of interest `[x, y, width, height]` in (binned) sensor pixels (unset: the
    /// camera's current region).
    #[serde(default)]
    pub roi: Option<[u32; 4]>,
    /// Binning, the same horizontally and vertically (unset: leave the camera's setting).
    #[serde(default)]
    pub binning: Option<u32>,
    /// Buffers pushed to the Aravis stream (8..=16): how many frames Aravis can hold while the
    /// camera thread copies one out.
    #[serde(default = "default_buffers")]
    pub buffers: usize,
}

fn default_rate() -> f64 {
    10.0
}

fn default_buffers() -> usize {
    12
}

impl GenicamConfig {
    /// A config that opens the camera at `address` with every other setting at its default.
    pub fn at_address(address: &str) -> Self {
        Self {
            address: Some(address.into()),
            serial: None,
            name: None,
            pixel_format: GenicamPixelFormat::default(),
            exposure_us: None,
            gain: None,
            frame_rate_hz: default_rate(),
            roi: None,
            binning: None,
            buffers: default_buffers(),
        }
    }

    /// Exposure, gain, region and binning as configured.
    pub fn settings(&self) -> CameraSettings {
        CameraSettings {
            exposure_us: self.exposure_us,
            gain: self.gain,
            roi: self.roi,
            binning: self.binning,
        }
    }

    /// These settings with exposure, gain, region and binning replaced where `changes` sets
    /// them (run-time changes kept for the next acquisition).
    pub fn with_settings(mut self, changes: CameraSettings) -> Self {
        let s = self.settings().merged(changes);
        self.exposure_us = s.exposure_us;
        self.gain = s.gain;
        self.roi = s.roi;
        self.binning = s.binning;
        self
    }

    /// The camera's IPv4 address, when it is opened by address.
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        self.address.as_deref().and_then(|a| a.trim().parse().ok())
    }

    /// Every problem with these settings as `(key, problem)`, key relative to
    /// `source.genicam`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let chosen = [
            self.address.is_some(),
            self.serial.is_some(),
            self.name.is_some(),
        ];
        match chosen.iter().filter(|c| **c).count() {
            0 => out.push((
                "address",
                "no camera chosen: give exactly one of address (IPv4, recommended), serial or name"
                    .to_string(),
            )),
            1 => {}
            _ => out.push((
                "address",
                "give exactly one of address, serial and name, not several".to_string(),
            )),
        }
        if let Some(a) = &self.address
            && self.ipv4().is_none()
        {
            out.push((
                "address",
                format!("{a:?} is not an IPv4 address (GigE Vision cameras are opened by IPv4)"),
            ));
        }
        if self.serial.as_deref().is_some_and(|s| s.trim().is_empty()) {
            out.push(("serial", "must not be empty".to_string()));
        }
        if self.name.as_deref().is_some_and(|s| s.trim().is_empty()) {
            out.push(("name", "must not be empty".to_string()));
        }
        if !(self.frame_rate_hz > 0.0 && self.frame_rate_hz <= 10_000.0) {
            out.push((
                "frame_rate_hz",
                format!("must be in (0, 10000], got {}", self.frame_rate_hz),
            ));
        }
        out.extend(self.settings().problems());
        if !(8..=16).contains(&self.buffers) {
            out.push(("buffers", format!("must be 8..=16, got {}", self.buffers)));
        }
        out
    }
}

/// Turns a camera's wrapping frame ids into monotonically increasing frame numbers and counts
/// the ids that never arrived.
///
/// GigE Vision 1.x block ids are 16 bits wide; 0 is reserved, so they run 1..=65535 and wrap
/// to 1. GigE Vision 2 extended ids and USB3 Vision ids are 64 bits wide and do not wrap in
/// practice. The unwrapper assumes 16-bit ids while every id seen fits in 16 bits, and that
/// 0 is skipped until an id 0 is seen.
#[derive(Debug, Clone, Default)]
pub struct FrameIdUnwrapper {
    last_raw: Option<u64>,
    number: u64,
    wide: bool,
    zero_seen: bool,
    missing: u64,
}

impl FrameIdUnwrapper {
    /// A fresh unwrapper; the first id seen becomes frame number 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The frame number of `raw`, the id of the next buffer the camera delivered.
    ///
    /// Ids between the newest one seen and this one are counted as missing. An id a little
    /// behind the newest (a buffer completed out of order) gets its earlier number back and is
    /// no longer counted as missing; an id far behind (more than half the 16-bit id space: a
    /// camera restart) continues the count at the newest number + 1.
    pub fn next(&mut self, raw: u64) -> u64 {
        if raw > u16::MAX as u64 {
            self.wide = true;
        }
        if raw == 0 {
            self.zero_seen = true;
        }
        let Some(last) = self.last_raw else {
            self.last_raw = Some(raw);
            self.number = 0;
            return 0;
        };
        let (ahead, behind) = if self.wide {
            (raw.wrapping_sub(last), last.wrapping_sub(raw))
        } else {
            let span = if self.zero_seen {
                1 << 16
            } else {
                (1 << 16) - 1
            };
            let norm = |id: u64| if self.zero_seen { id } else { id.max(1) - 1 };
            let (r, l) = (norm(raw & 0xFFFF), norm(last & 0xFFFF));
            ((r + span - l) % span, (l + span - r) % span)
        };
        let half = if self.wide { 1u64 << 62 } else { 1 << 15 };
        if ahead == 0 {
            // The same id again: nothing new is known; keep it apart from the previous frame.
            self.number += 1;
        } else if ahead <= half {
            self.missing += ahead - 1;
            self.number += ahead;
        } else if behind <= half && behind <= self.number {
            // A late buffer: its id was counted missing when a later one arrived.
            self.missing = self.missing.saturating_sub(1);
            return self.number - behind;
        } else {
            self.number += 1; // a restart of the camera's counter
        }
        self.last_raw = Some(raw);
        self.number
    }

    /// Frame ids skipped so far (frames that never arrived).
    pub fn missing(&self) -> u64 {
        self.missing
    }

    /// The last frame number handed out, if any.
    pub fn last(&self) -> Option<u64> {
        self.last_raw.map(|_| self.number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> GenicamConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn a_minimal_config_by_address_is_valid() {
        let c = parse("address = \"127.0.0.1\"");
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        assert_eq!(c.pixel_format, GenicamPixelFormat::Mono16);
        assert_eq!(c.buffers, 12);
        assert_eq!(c.ipv4(), Some(Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn problems_name_the_key() {
        let cases = [
            ("", "address"),
            ("address = \"127.0.0.1\"\nserial = \"X\"", "address"),
            ("address = \"camera.local\"", "address"),
            ("serial = \"\"", "serial"),
            ("name = \" \"", "name"),
            ("address = \"10.0.0.2\"\nexposure_us = 0", "exposure_us"),
            ("address = \"10.0.0.2\"\ngain = -1", "gain"),
            ("address = \"10.0.0.2\"\nframe_rate_hz = 0", "frame_rate_hz"),
            ("address = \"10.0.0.2\"\nroi = [0, 0, 0, 10]", "roi"),
            ("address = \"10.0.0.2\"\nbinning = 0", "binning"),
            ("address = \"10.0.0.2\"\nbuffers = 4", "buffers"),
            ("address = \"10.0.0.2\"\nbuffers = 17", "buffers"),
        ];
        for (text, key) in cases {
            let p = parse(text).problems();
            assert_eq!(p.first().map(|(k, _)| *k), Some(key), "{text:?}: {p:?}");
        }
        assert!(
            toml::from_str::<GenicamConfig>("address = \"1.2.3.4\"\npixel_format = \"rgb8\"")
                .is_err()
        );
        assert!(toml::from_str::<GenicamConfig>("adress = \"1.2.3.4\"").is_err());
    }

    #[test]
    fn sixteen_bit_ids_wrap_past_65535_to_1() {
        let mut u = FrameIdUnwrapper::new();
        let ids = [65533u64, 65534, 65535, 1, 2];
        let n: Vec<u64> = ids.iter().map(|&i| u.next(i)).collect();
        assert_eq!(n, vec![0, 1, 2, 3, 4]);
        assert_eq!(u.missing(), 0);
    }

    #[test]
    fn gaps_are_counted_across_the_wrap() {
        let mut u = FrameIdUnwrapper::new();
        assert_eq!(u.next(65530), 0);
        assert_eq!(u.next(65534), 4); // 65531..=65533 missing
        assert_eq!(u.next(3), 8); // 65535, 1, 2 missing
        assert_eq!(u.missing(), 6);
        assert_eq!(u.last(), Some(8));
    }

    #[test]
    fn cameras_that_use_id_zero_wrap_to_zero() {
        let mut u = FrameIdUnwrapper::new();
        u.next(0);
        for i in 1..=65535u64 {
            u.next(i);
        }
        assert_eq!(u.next(0), 65536);
        assert_eq!(u.missing(), 0);
    }

    #[test]
    fn wide_ids_do_not_wrap_at_16_bits() {
        let mut u = FrameIdUnwrapper::new();
        assert_eq!(u.next(70_000), 0);
        assert_eq!(u.next(70_001), 1);
        assert_eq!(u.next(70_010), 10);
        assert_eq!(u.missing(), 8);
    }

    #[test]
    fn a_far_backward_jump_is_a_restart_not_a_loss() {
        let mut u = FrameIdUnwrapper::new();
        u.next(10_000);
        u.next(10_001);
        assert_eq!(u.next(5), 2);
        assert_eq!(u.next(6), 3);
        assert_eq!(u.missing(), 0);
    }

    #[test]
    fn a_late_buffer_gets_its_number_back_and_is_not_missing() {
        let mut u = FrameIdUnwrapper::new();
        assert_eq!(u.next(10), 0);
        assert_eq!(u.next(12), 2);
        assert_eq!(u.missing(), 1);
        assert_eq!(u.next(11), 1);
        assert_eq!(u.missing(), 0);
        assert_eq!(u.next(13), 3);
        // across the wrap as well
        let mut u = FrameIdUnwrapper::new();
        u.next(65535);
        assert_eq!(u.next(2), 2);
        assert_eq!(u.next(1), 1);
        assert_eq!(u.missing(), 0);
    }
}
