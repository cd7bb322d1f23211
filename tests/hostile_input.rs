//! Hostile input: the fuzz corpora and every input a fuzzer crashed on, replayed through the
//! same functions the fuzz targets call (`scopepilot::hostile_input`), and a property test of
//! the real gRPC server: random `PushFrames` messages never take it down and every one is
//! accounted for.
//!
//! - `fuzz/corpus/<target>/`: the seeds (`fuzz/make_seeds.py`). Seeds named `*refused*`
//!   must be refused with an error, the other seeds must be accepted, and anything else in
//!   the folder (inputs a fuzzer added) must only return.
//! - `tests/data/fuzz-regressions/<target>/`: inputs that crashed, hung or exhausted memory
//!   before the fix named in `/tmp/notes/fuzz.md` / docs/reliability.md; each must now be
//!   refused with an error (or accepted, when its name starts with `accepted-`).

mod common;

use std::path::{Path, PathBuf};

use common::{SMALL, TestServer, start, status, wait_for};
use prost::Message;
use prost::bytes::{Buf, BufMut};
use scopepilot::hostile_input;
use scopepilot::proto::{PixelType, PushFramesRequest, PushFramesResponse};
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;

type Target = fn(&[u8]) -> Result<(), String>;

fn push_frame(bytes: &[u8]) -> Result<(), String> {
    hostile_input::push_frame(bytes).map(|_| ())
}

const TARGETS: [(&str, Target); 5] = [
    ("config", hostile_input::config),
    ("rules", hostile_input::rules),
    ("tiff", hostile_input::tiff),
    ("model_package", hostile_input::model_package),
    ("push_frame", push_frame),
];

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// A seed written by fuzz/make_seeds.py (named), as opposed to an input a fuzzer named by
/// its SHA-1.
fn is_named_seed(name: &str) -> bool {
    !(name.len() == 40 && name.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[test]
fn every_seed_of_every_fuzz_target_gives_its_expected_answer() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut wrong = Vec::new();
    for (target, run) in TARGETS {
        let seeds = files(&root.join(target));
        assert!(
            seeds.len() >= 3,
            "fuzz/corpus/{target} should hold seeds (run fuzz/make_seeds.py)"
        );
        let mut refused = 0;
        for seed in seeds {
            let n = name(&seed);
            let result = run(&std::fs::read(&seed).unwrap());
            if !is_named_seed(&n) {
                continue; // found by a fuzzer: returning is all that is asked
            }
            match (n.contains("refused"), result) {
                (true, Err(_)) => refused += 1,
                (false, Ok(())) => {}
                (true, Ok(())) => wrong.push(format!("{target}/{n}: accepted, should be refused")),
                (false, Err(e)) => wrong.push(format!("{target}/{n}: refused: {e}")),
            }
        }
        if target == "push_frame" || target == "tiff" {
            assert!(refused > 0, "{target}: the seeds include inputs to refuse");
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_input_that_once_crashed_a_fuzz_target_is_now_answered_with_an_error() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz-regressions");
    let mut wrong = Vec::new();
    let mut seen = 0;
    for (target, run) in TARGETS {
        for input in files(&root.join(target)) {
            seen += 1;
            let n = name(&input);
            let bytes = std::fs::read(&input).unwrap();
            let got = std::panic::catch_unwind(|| run(&bytes));
            match (n.starts_with("accepted-"), got) {
                (_, Err(_)) => wrong.push(format!("{target}/{n}: panicked")),
                (false, Ok(Err(e))) => assert!(!e.is_empty(), "{target}/{n}: an empty error"),
                (true, Ok(Ok(()))) => {}
                (false, Ok(Ok(()))) => wrong.push(format!("{target}/{n}: accepted")),
                (true, Ok(Err(e))) => wrong.push(format!("{target}/{n}: refused: {e}")),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    eprintln!("{seen} fuzz regression inputs replayed");
}

// ---------------------------------------------------------------------------------------------
// Property test: random PushFrames messages against the real server.

/// SplitMix64: a small, seeded, reproducible generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// What the server must make of a message, decided without the server's code: the
/// documented contract of `PushFramesRequest` (pixel type U8/U16/F32; width and height
/// 1..=16384; at most `source.push.max_pixels` = 64 Mi pixels; `data` exactly
/// width x height x bytes per pixel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Valid,
    /// Rejected with INVALID_ARGUMENT naming the frame, and counted in `frames_rejected`.
    BadFrame(u64),
    /// Not a protobuf message at all: the stream fails, nothing is counted.
    Undecodable,
}

fn verdict(bytes: &[u8]) -> Verdict {
    let Ok(m) = PushFramesRequest::decode(bytes) else {
        return Verdict::Undecodable;
    };
    let bpp = match m.pixel_type {
        1 => 1,
        2 => 2,
        3 => 4,
        _ => return Verdict::BadFrame(m.frame_number),
    };
    let (w, h) = (m.width as u64, m.height as u64);
    let ok = (1..=16_384).contains(&w)
        && (1..=16_384).contains(&h)
        && w * h <= 64 << 20
        && m.data.len() as u64 == w * h * bpp;
    if ok {
        Verdict::Valid
    } else {
        Verdict::BadFrame(m.frame_number)
    }
}

fn valid_frame(rng: &mut Rng, n: u64) -> PushFramesRequest {
    let (w, h) = (rng.range(1, 48) as u32, rng.range(1, 48) as u32);
    let (pixel_type, bpp) = match rng.range(0, 2) {
        0 => (PixelType::U8, 1),
        1 => (PixelType::U16, 2),
        _ => (PixelType::F32, 4),
    };
    PushFramesRequest {
        width: w,
        height: h,
        pixel_type: pixel_type as i32,
        frame_number: n,
        timestamp_ns: rng.next(),
        exposure_us: rng.next() as u32,
        data: rng.bytes((w * h) as usize * bpp),
    }
}

/// A message that is wrong in one of many ways (some of which the oracle may still find
/// valid by chance, e.g. random bytes that decode: [`verdict`] decides).
fn hostile_message(rng: &mut Rng, n: u64) -> Vec<u8> {
    let mut m = valid_frame(rng, n);
    let sides = [0u32, 1, 16_384, 16_385, 65_535, u32::MAX];
    match rng.range(0, 9) {
        0 => m.width = sides[rng.range(0, 5) as usize],
        1 => m.height = sides[rng.range(0, 5) as usize],
        2 => {
            // Huge but within the side limit: more pixels than allowed, or data missing.
            m.width = rng.range(4_097, 16_384) as u32;
            m.height = rng.range(4_097, 16_384) as u32;
        }
        3 => {
            let invalid = [0, 4, 5, -1, i32::MAX, i32::MIN];
            m.pixel_type = invalid[rng.range(0, 5) as usize];
        }
        4 => {
            let len = m.data.len();
            m.data
                .truncate(len.saturating_sub(rng.range(1, 4) as usize));
        }
        5 => {
            let extra = rng.range(1, 4) as usize;
            m.data.extend(rng.bytes(extra));
        }
        6 => {
            let len = rng.range(0, 300) as usize;
            m.data = rng.bytes(len);
        }
        7 => m.data.clear(),
        8 => {
            // Random bytes on the wire: mostly not a protobuf message.
            let len = rng.range(1, 64) as usize;
            return rng.bytes(len);
        }
        _ => {
            // A valid message cut short.
            let bytes = m.encode_to_vec();
            let cut = rng.range(1, bytes.len() as u64 - 1) as usize;
            return bytes[..cut].to_vec();
        }
    }
    m.encode_to_vec()
}

/// A gRPC codec that sends already-encoded message bytes as they are, so that the stream may
/// carry anything, not only what prost would encode.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

struct RawEncoder;
struct ResponseDecoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for ResponseDecoder {
    type Item = PushFramesResponse;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut DecodeBuf<'_>,
    ) -> Result<Option<PushFramesResponse>, tonic::Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        PushFramesResponse::decode(bytes)
            .map(Some)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = PushFramesResponse;
    type Encoder = RawEncoder;
    type Decoder = ResponseDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> ResponseDecoder {
        ResponseDecoder
    }
}

/// One `PushFrames` call carrying `messages` as raw bytes.
async fn push_raw(
    channel: &Channel,
    messages: impl tokio_stream::Stream<Item = Vec<u8>> + Send + 'static,
) -> Result<PushFramesResponse, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/scopepilot.v1.Frames/PushFrames");
    grpc.client_streaming(tonic::Request::new(messages), path, RawCodec)
        .await
        .map(tonic::Response::into_inner)
}

/// Valid frames the server took (queued or lost for want of a buffer) and frames it rejected.
fn push_counts(s: &scopepilot::proto::GetStatusResponse) -> (u64, u64) {
    (
        s.frames_acquired + s.frames_lost_no_buffer,
        s.frames_rejected,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_push_frames_messages_are_all_answered_and_accounted_for() {
    const STREAMS: usize = 150;
    let server = TestServer::start(SMALL).await;
    let mut acq = server.acquisition().await;
    acq.start(start("push")).await.unwrap();
    let channel = server.channel().await;
    let mut rng = Rng(0x5c0f_e91a_b5e5);
    let (mut valid, mut rejected) = (0u64, 0u64);
    let (mut bad_frames, mut undecodable, mut sent) = (0, 0, 0);
    let mut n = 0u64;
    for i in 0..STREAMS {
        // Valid frames, then (usually) a hostile message, then frames the server must not
        // read once it has refused the stream.
        let mut messages: Vec<Vec<u8>> = Vec::new();
        for _ in 0..rng.range(0, 4) {
            n += 1;
            messages.push(valid_frame(&mut rng, n).encode_to_vec());
        }
        if rng.chance(85) {
            n += 1;
            messages.push(hostile_message(&mut rng, n));
            for _ in 0..rng.range(0, 2) {
                n += 1;
                messages.push(valid_frame(&mut rng, n).encode_to_vec());
            }
        }
        sent += messages.len();
        let verdicts: Vec<Verdict> = messages.iter().map(|m| verdict(m)).collect();
        let taken = verdicts
            .iter()
            .take_while(|v| **v == Verdict::Valid)
            .count() as u64;
        let first_bad = verdicts.iter().copied().find(|v| *v != Verdict::Valid);
        let result = push_raw(&channel, tokio_stream::iter(messages)).await;
        match (first_bad, result) {
            (None, Ok(r)) => assert_eq!(
                r.frames_accepted + r.frames_lost_no_buffer,
                taken,
                "stream {i}: every valid frame is accepted"
            ),
            (Some(Verdict::BadFrame(frame)), Err(e)) => {
                bad_frames += 1;
                rejected += 1;
                assert_eq!(e.code(), Code::InvalidArgument, "stream {i}: {e:?}");
                assert!(
                    e.message().starts_with(&format!("frame {frame}: ")),
                    "stream {i}: the error names the frame: {e:?}"
                );
            }
            (Some(Verdict::Undecodable), Err(e)) => {
                undecodable += 1;
                assert_ne!(e.code(), Code::Ok, "stream {i}");
                assert!(!e.message().is_empty(), "stream {i}: {e:?}");
            }
            (expected, got) => panic!("stream {i}: expected {expected:?}, got {got:?}"),
        }
        valid += taken;
        if i % 10 == 9 || i + 1 == STREAMS {
            let s = status(&mut acq).await;
            assert_eq!(
                push_counts(&s),
                (valid, rejected),
                "after stream {i}: (valid taken, rejected) must match what was sent"
            );
        }
    }
    eprintln!(
        "{STREAMS} streams, {sent} messages: {valid} valid frames taken, {bad_frames} bad frames \
         rejected, {undecodable} undecodable messages"
    );
    assert!(
        bad_frames > 50 && undecodable > 5 && valid > 150,
        "the generator covers each case"
    );

    // A client that goes away in the middle of its stream: what it sent is counted, nothing
    // is rejected, and the server carries on.
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(8);
    let call = tokio::spawn({
        let channel = channel.clone();
        async move { push_raw(&channel, tokio_stream::wrappers::ReceiverStream::new(rx)).await }
    });
    for _ in 0..3 {
        n += 1;
        tx.send(valid_frame(&mut rng, n).encode_to_vec())
            .await
            .unwrap();
    }
    valid += 3;
    wait_for(&mut acq, "the abandoned stream's frames", |s| {
        push_counts(s).0 == valid
    })
    .await;
    call.abort();
    let _ = call.await;
    drop(tx);

    // The server still answers, the accounting is exact, and valid frames still flow
    // through the pipeline.
    let before = status(&mut acq).await;
    assert_eq!(push_counts(&before), (valid, rejected));
    let raw_out = common::stage(&before, "raw").frames_out;
    let frames: Vec<Vec<u8>> = (0..5)
        .map(|k| {
            let pixels: Vec<u16> = (0..32 * 24).map(|p| (p * 7 + k) as u16).collect();
            common::push_u16(n + 1 + k as u64, 32, 24, &pixels).encode_to_vec()
        })
        .collect();
    let r = push_raw(&channel, tokio_stream::iter(frames))
        .await
        .unwrap();
    assert_eq!(r.frames_accepted + r.frames_lost_no_buffer, 5);
    valid += 5;
    let after = wait_for(&mut acq, "the last frames through the pipeline", |s| {
        common::stage(s, "raw").frames_out > raw_out
            && common::stage(s, "gaussian").frames_out
                > common::stage(&before, "gaussian").frames_out
    })
    .await;
    assert_eq!(push_counts(&after), (valid, rejected));
    assert_eq!(after.state, before.state, "still acquiring");
    server.stop().await;
}
