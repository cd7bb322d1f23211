//! [`GenicamSource`]: one Aravis camera and its stream (feature `genicam`).

use std::net::{Ipv4Addr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use aravis::glib::prelude::Cast;
use aravis::prelude::*;
use aravis::{
    AcquisitionMode, Buffer, BufferStatus, Camera, GvDevice, GvInterface, GvStream, PixelFormat,
    Stream, UvInterface,
};

use super::{FrameIdUnwrapper, GenicamConfig, GenicamPixelFormat};
use crate::frame::{FramePool, FrameSpec, PixelType, Pixels};
use crate::source::camera_control::{
    CameraControl, CameraControlServer, CameraSettings, camera_control,
};
use crate::source::{Capture, FrameInterval, FrameSource, SourceError, SourceLosses};

/// How long one [`FrameSource::capture`] call waits for a buffer, so that a stop request is
/// noticed quickly.
const POP_TIMEOUT: Duration = Duration::from_millis(20);

/// The GigE Vision control port: only used to pick the local interface that routes to the
/// camera (a UDP `connect` sends nothing).
const GVCP_PORT: u16 = 3956;

/// Counters of the Aravis stream (`arv_stream_get_statistics` and, for GigE Vision, the
/// packet-level numbers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AravisStreamStats {
    /// Buffers completed successfully.
    pub completed: u64,
    /// Buffers completed with an error (missing packets, timeout, size mismatch...).
    pub failures: u64,
    /// Frames Aravis could not store because no buffer was queued.
    pub underruns: u64,
    /// Frame ids Aravis saw skipped (GigE Vision only).
    pub missing_frames: u64,
    /// Packets never received (GigE Vision only).
    pub missing_packets: u64,
    /// Packets the camera resent on request (GigE Vision only).
    pub resent_packets: u64,
    /// Payload bytes received (GigE Vision only).
    pub transferred_bytes: u64,
}

/// A GigE Vision or USB3 Vision camera, streaming through Aravis.
pub struct GenicamSource {
    camera: Camera,
    stream: Stream,
    description: String,
    spec: FrameSpec,
    interval: Arc<FrameInterval>,
    applied_interval: Duration,
    rate_bounds: Option<(f64, f64)>,
    ids: FrameIdUnwrapper,
    incomplete: u64,
    /// Incomplete buffers without a frame id (their ids are among the gaps).
    unplaced: u64,
    is_gv: bool,
    /// Exposure stamped on frames: the camera's setting when the frame was copied (after
    /// a change, frames already exposed and queued in Aravis buffers carry the new value).
    exposure_us: u32,
    bytes_per_row: usize,
    control: CameraControl,
    control_server: CameraControlServer,
}

// `Camera`, `Stream` and `Buffer` are `Send` in the aravis crate; the source is used by one
// thread at a time (opened on the caller's thread, then moved to the camera thread).

impl std::fmt::Debug for GenicamSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenicamSource")
            .field("camera", &self.description)
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

fn describe(config: &GenicamConfig) -> String {
    match (&config.address, &config.serial, &config.name) {
        (Some(a), _, _) => format!("genicam camera at {a}"),
        (_, Some(s), _) => format!("genicam camera with serial {s:?}"),
        (_, _, Some(n)) => format!("genicam camera {n:?}"),
        _ => "genicam camera".into(),
    }
}

/// The local IPv4 address the kernel would use to reach `device` (no packet is sent).
fn interface_towards(device: Ipv4Addr) -> std::io::Result<Ipv4Addr> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    socket.connect((device, GVCP_PORT))?;
    match socket.local_addr()?.ip() {
        std::net::IpAddr::V4(a) => Ok(a),
        std::net::IpAddr::V6(_) => Err(std::io::Error::other("no IPv4 route")),
    }
}

fn open_camera(
    config: &GenicamConfig,
    err: &dyn Fn(String) -> SourceError,
) -> Result<Camera, SourceError> {
    if let Some(device) = config.ipv4() {
        // Straight to the address: no discovery broadcast on any interface.
        let local =
            interface_towards(device).map_err(|e| err(format!("no route to {device}: {e}")))?;
        let inet = |a: Ipv4Addr| {
            gio::InetAddress::from_string(&a.to_string())
                .ok_or_else(|| err(format!("cannot use address {a}")))
        };
        let gv = GvDevice::new(&inet(local)?, &inet(device)?).map_err(|e| {
            err(format!(
                "no GigE Vision camera answered at {device} (from {local}): {e}"
            ))
        })?;
        return Camera::with_device(&gv).map_err(|e| err(format!("cannot open the camera: {e}")));
    }
    if let Some(serial) = &config.serial {
        for iface in [GvInterface::instance(), UvInterface::instance()]
            .into_iter()
            .flatten()
        {
            iface.update_device_list();
            for i in 0..iface.n_devices() {
                if iface.device_serial_nbr(i).as_deref() == Some(serial.as_str()) {
                    let id = iface.device_id(i);
                    let device = iface
                        .open_device(id.as_deref())
                        .map_err(|e| err(format!("cannot open the camera: {e}")))?;
                    return Camera::with_device(&device)
                        .map_err(|e| err(format!("cannot open the camera: {e}")));
                }
            }
        }
        return Err(err(format!(
            "no GigE Vision or USB3 Vision camera with serial number {serial:?} was found"
        )));
    }
    let name = config.name.as_deref();
    Camera::new(name).map_err(|e| err(format!("cannot open the camera: {e}")))
}

/// Check `value` against the camera's declared `bounds` (when it declares them).
fn within(
    what: &str,
    value: f64,
    bounds: Result<(f64, f64), aravis::glib::Error>,
) -> Result<(), String> {
    match bounds {
        Ok((lo, hi)) if lo <= hi && !(lo..=hi).contains(&value) => Err(format!(
            "{what} {value} is outside the camera's range [{lo}, {hi}]"
        )),
        _ => Ok(()),
    }
}

/// Set the exposure time (microseconds), within the camera's range.
fn set_exposure(camera: &Camera, us: f64) -> Result<(), String> {
    within("exposure_us", us, camera.exposure_time_bounds())?;
    camera
        .set_exposure_time(us)
        .map_err(|e| format!("cannot set exposure_us {us}: {e}"))
}

/// Set the gain, within the camera's range.
fn set_gain(camera: &Camera, gain: f64) -> Result<(), String> {
    within("gain", gain, camera.gain_bounds())?;
    camera
        .set_gain(gain)
        .map_err(|e| format!("cannot set gain {gain}: {e}"))
}

impl GenicamSource {
    /// Open and configure the camera in `config`, push its buffers and start acquiring.
    /// The frame rate follows `interval` from then on.
    pub fn open(config: &GenicamConfig, interval: Arc<FrameInterval>) -> Result<Self, SourceError> {
        let description = describe(config);
        let err = |problem: String| SourceError::Input {
            path: description.clone(),
            problem,
        };
        if let Some((key, problem)) = config.problems().into_iter().next() {
            return Err(SourceError::Config(format!(
                "source.genicam.{key}: {problem}"
            )));
        }
        let camera = open_camera(config, &err)?;
        let set = |what: &str, r: Result<(), aravis::glib::Error>| {
            r.map_err(|e| err(format!("cannot set {what}: {e}")))
        };
        set(
            "AcquisitionMode Continuous",
            camera.set_acquisition_mode(AcquisitionMode::Continuous),
        )?;
        let (format, pixel_type) = match config.pixel_format {
            GenicamPixelFormat::Mono8 => (PixelFormat::MONO_8, PixelType::U8),
            GenicamPixelFormat::Mono16 => (PixelFormat::MONO_16, PixelType::U16),
        };
        set(
            &format!("pixel_format {}", config.pixel_format.genicam_name()),
            camera.set_pixel_format(format),
        )?;
        if let Some(b) = config.binning {
            set(
                &format!("binning {b}"),
                camera.set_binning(b as i32, b as i32),
            )?;
        }
        if let Some([x, y, w, h]) = config.roi {
            set(
                &format!("roi [{x}, {y}, {w}, {h}]"),
                camera.set_region(x as i32, y as i32, w as i32, h as i32),
            )?;
        }
        if let Some(e) = config.exposure_us {
            set_exposure(&camera, e).map_err(err)?;
        }
        if let Some(g) = config.gain {
            set_gain(&camera, g).map_err(err)?;
        }
        let rate_bounds = camera.frame_rate_bounds().ok();
        let actual_format = camera
            .pixel_format()
            .map_err(|e| err(format!("cannot read PixelFormat: {e}")))?;
        if actual_format != format {
            return Err(err(format!(
                "the camera did not accept pixel_format {} (it reports 0x{:08x})",
                config.pixel_format.genicam_name(),
                actual_format.raw()
            )));
        }
        let (x, y, w, h) = camera
            .region()
            .map_err(|e| err(format!("cannot read the region: {e}")))?;
        if let Some([rx, ry, rw, rh]) = config.roi
            && (x as u32, y as u32, w as u32, h as u32) != (rx, ry, rw, rh)
        {
            tracing::warn!(
                requested = ?[rx, ry, rw, rh],
                actual = ?[x, y, w, h],
                "the camera adjusted the region of interest to its increments"
            );
        }
        if w <= 0 || h <= 0 {
            return Err(err(format!("the camera reports an empty region {w}x{h}")));
        }
        let spec = FrameSpec::new(w as u32, h as u32, pixel_type);
        let exposure_us = camera
            .exposure_time()
            .map(|e| e.round().clamp(0.0, u32::MAX as f64) as u32)
            .unwrap_or(0);
        let payload = camera
            .payload()
            .map_err(|e| err(format!("cannot read PayloadSize: {e}")))?
            as usize;
        if payload < spec.byte_len() {
            return Err(err(format!(
                "payload of {payload} bytes is smaller than a {spec} frame"
            )));
        }
        let (control, control_server) = camera_control();
        let stream = camera
            .create_stream()
            .map_err(|e| err(format!("cannot create the stream: {e}")))?;
        for _ in 0..config.buffers {
            stream.push_buffer(Buffer::new_allocate(payload));
        }
        let mut source = Self {
            camera,
            stream,
            description: description.clone(),
            spec,
            applied_interval: Duration::ZERO,
            interval,
            rate_bounds,
            ids: FrameIdUnwrapper::new(),
            incomplete: 0,
            unplaced: 0,
            is_gv: false,
            exposure_us,
            bytes_per_row: spec.width as usize * pixel_type.bytes(),
            control,
            control_server,
        };
        source.is_gv = source.camera.is_gv_device();
        source.apply_interval();
        let camera = &source.camera;
        camera
            .start_acquisition()
            .map_err(|e| err(format!("cannot start acquisition: {e}")))?;
        tracing::info!(
            camera = %source.description,
            model = %camera.model_name().map(|s| s.to_string()).unwrap_or_default(),
            serial = %camera.device_serial_number().map(|s| s.to_string()).unwrap_or_default(),
            format = %spec,
            region = ?[x, y, w, h],
            exposure_us,
            frame_rate_hz = camera.frame_rate().unwrap_or(f64::NAN),
            buffers = config.buffers,
            "genicam camera streaming"
        );
        Ok(source)
    }

    /// Bring the camera's `AcquisitionFrameRate` to the current frame interval when it changed
    /// (by `SetFrameInterval` or a rule). Runs on the camera thread, between frames.
    fn apply_interval(&mut self) {
        let want = self.interval.get();
        if want == self.applied_interval {
            return;
        }
        self.applied_interval = want;
        let requested = 1.0 / want.as_secs_f64();
        let hz = match self.rate_bounds {
            Some((lo, hi)) if lo <= hi => requested.clamp(lo, hi),
            _ => requested,
        };
        match self.camera.set_frame_rate(hz) {
            Ok(()) => {
                let actual = self.camera.frame_rate().unwrap_or(hz);
                if (actual - requested).abs() > 1e-6 * requested.max(1.0) {
                    tracing::warn!(
                        requested_hz = requested,
                        actual_hz = actual,
                        "the camera runs at a different frame rate than requested"
                    );
                } else {
                    tracing::debug!(frame_rate_hz = actual, "camera frame rate set");
                }
            }
            Err(e) => tracing::warn!(
                camera = %self.description,
                frame_rate_hz = hz,
                error = %e,
                "cannot set the camera frame rate"
            ),
        }
    }

    /// Exposure, gain, region and binning as the camera reports them now.
    pub fn readout(&self) -> CameraSettings {
        let c = &self.camera;
        CameraSettings {
            exposure_us: c.exposure_time().ok(),
            gain: c.gain().ok(),
            roi: c
                .region()
                .ok()
                .map(|(x, y, w, h)| [x, y, w, h].map(|v| v.max(0) as u32)),
            binning: c.binning().ok().map(|(dx, _)| dx.max(0) as u32),
        }
    }

    /// Apply exposure and gain now (between frames; region and binning change the frame
    /// size and are refused) and report the camera's settings afterwards.
    pub fn apply_settings(&mut self, s: &CameraSettings) -> Result<CameraSettings, String> {
        if s.changes_frame_size() {
            return Err(format!(
                "roi and binning change the frame size ({} now) and apply from the next \
                 acquisition: stop, change them, start",
                self.spec
            ));
        }
        if let Some((key, problem)) = s.problems().into_iter().next() {
            return Err(format!("{key}: {problem}"));
        }
        if let Some(e) = s.exposure_us {
            set_exposure(&self.camera, e)?;
        }
        if let Some(g) = s.gain {
            set_gain(&self.camera, g)?;
        }
        let now = self.readout();
        if let Some(e) = now.exposure_us {
            self.exposure_us = e.round().clamp(0.0, u32::MAX as f64) as u32;
        }
        tracing::info!(
            camera = %self.description,
            exposure_us = ?now.exposure_us,
            gain = ?now.gain,
            "camera settings changed"
        );
        Ok(now)
    }

    /// Serve the pending settings requests of the API (camera thread, between frames).
    fn serve_settings(&mut self) {
        while let Some(request) = self.control_server.try_next() {
            let outcome = self.apply_settings(&request.settings);
            request.answer(outcome);
        }
    }

    /// The Aravis stream's own counters.
    pub fn stream_stats(&self) -> AravisStreamStats {
        let (completed, failures, underruns) = self.stream.statistics();
        let mut s = AravisStreamStats {
            completed,
            failures,
            underruns,
            ..Default::default()
        };
        if let Some(gv) = self.stream.downcast_ref::<GvStream>() {
            let (resent, missing_packets) = gv.statistics();
            s.resent_packets = resent;
            s.missing_packets = missing_packets;
            s.missing_frames = gv.info_uint64_by_name("n_missing_frames");
            s.transferred_bytes = gv.info_uint64_by_name("n_transferred_bytes");
        }
        s
    }

    /// The last frame number handed out (delivered or not), if any buffer arrived yet.
    pub fn last_frame_number(&self) -> Option<u64> {
        self.ids.last()
    }

    /// What the camera actually runs at now (`AcquisitionFrameRate`).
    pub fn camera_frame_rate(&self) -> Option<f64> {
        self.camera.frame_rate().ok()
    }

    /// Copy the pixels of a complete `buffer` into `pixels`.
    fn copy_pixels(&self, buffer: &Buffer, pixels: &mut Pixels) -> Result<(), String> {
        let (w, h) = (buffer.image_width(), buffer.image_height());
        if (w as u32, h as u32) != (self.spec.width, self.spec.height) {
            return Err(format!(
                "buffer is {w}x{h}, expected {}x{}",
                self.spec.width, self.spec.height
            ));
        }
        let (pad_x, _) = buffer.image_padding();
        let stride = self.bytes_per_row + pad_x.max(0) as usize;
        let (ptr, len) = buffer.data();
        let rows = self.spec.height as usize;
        let needed = stride * (rows - 1) + self.bytes_per_row;
        if ptr.is_null() || len < needed {
            return Err(format!("buffer holds {len} bytes, a frame needs {needed}"));
        }
        // SAFETY: Aravis owns `len` readable bytes at `ptr` for as long as `buffer` lives,
        // and the stream thread does not touch a buffer that has been popped.
        let data = unsafe { std::slice::from_raw_parts(ptr as *const u8, len) };
        let dst: &mut [u8] = match pixels {
            Pixels::U8(v) => v.as_mut_slice(),
            Pixels::U16(v) => bytemuck::cast_slice_mut(v.as_mut_slice()),
            Pixels::F32(_) => return Err("frame pool holds f32 frames".into()),
        };
        if stride == self.bytes_per_row {
            dst.copy_from_slice(&data[..dst.len()]);
        } else {
            for (row, out) in dst.chunks_exact_mut(self.bytes_per_row).enumerate() {
                out.copy_from_slice(&data[row * stride..][..self.bytes_per_row]);
            }
        }
        // GenICam pixel data is little-endian.
        #[cfg(target_endian = "big")]
        if let Pixels::U16(v) = pixels {
            v.iter_mut().for_each(|p| *p = u16::from_le(*p));
        }
        Ok(())
    }

    fn take(&mut self, buffer: &Buffer, pool: &mut FramePool) -> Result<Capture, SourceError> {
        let status = buffer.status();
        let raw_id = buffer.frame_id();
        if matches!(status, BufferStatus::Aborted | BufferStatus::Cleared) {
            return Ok(Capture::Idle); // acquisition stopping
        }
        // GigE Vision reserves id 0, and every buffer goes back to Aravis with id 0: a buffer
        // whose leader packet was lost comes back without an id (Aravis 0.8 would otherwise
        // leave the id of the buffer's previous frame in it). Its frame shows up as a gap in
        // the ids of the buffers around it; it is counted once, as incomplete.
        let number = (raw_id != 0 || !self.is_gv).then(|| self.ids.next(raw_id));
        let Some(number) = number.filter(|_| status == BufferStatus::Success) else {
            self.incomplete += 1;
            if number.is_none() {
                self.unplaced += 1;
            }
            return Ok(Capture::Idle);
        };
        let Some(mut writer) = pool.acquire() else {
            return Ok(Capture::Lost {
                frame_number: number,
            });
        };
        if let Err(problem) = self.copy_pixels(buffer, writer.pixels_mut()) {
            return Err(SourceError::Input {
                path: self.description.clone(),
                problem,
            });
        }
        let meta = writer.meta_mut();
        meta.frame_number = number;
        meta.camera_timestamp_ns = match buffer.timestamp() {
            0 => buffer.system_timestamp(),
            t => t,
        };
        meta.exposure_us = self.exposure_us;
        meta.synthetic = false;
        Ok(Capture::Frame(writer.publish_arrived()))
    }
}

impl FrameSource for GenicamSource {
    fn kind(&self) -> &'static str {
        "genicam"
    }

    fn spec(&self) -> FrameSpec {
        self.spec
    }

    fn capture(&mut self, pool: &mut FramePool) -> Result<Capture, SourceError> {
        self.apply_interval();
        self.serve_settings();
        let Some(buffer) = self
            .stream
            .timeout_pop_buffer(POP_TIMEOUT.as_micros() as u64)
        else {
            return Ok(Capture::Idle);
        };
        let result = self.take(&buffer, pool);
        // The buffer goes straight back to Aravis, whatever happened to its frame.
        if self.is_gv {
            buffer.set_frame_id(0);
        }
        self.stream.push_buffer(buffer);
        result
    }

    fn camera_control(&self) -> Option<CameraControl> {
        Some(self.control.clone())
    }

    fn losses(&self) -> SourceLosses {
        SourceLosses {
            missing: self.ids.missing().saturating_sub(self.unplaced),
            incomplete: self.incomplete,
        }
    }
}

impl Drop for GenicamSource {
    fn drop(&mut self) {
        if let Err(e) = self.camera.stop_acquisition() {
            tracing::warn!(camera = %self.description, error = %e, "cannot stop acquisition");
        }
        let s = self.stream_stats();
        tracing::info!(
            camera = %self.description,
            completed = s.completed,
            failures = s.failures,
            underruns = s.underruns,
            missing_frames = s.missing_frames,
            missing_packets = s.missing_packets,
            resent_packets = s.resent_packets,
            "genicam stream closed"
        );
    }
}
