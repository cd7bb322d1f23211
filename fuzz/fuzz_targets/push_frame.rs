//! Fuzz target: `scopepilot::hostile_input::push_frame` (an Err is fine, a panic is a bug).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = scopepilot::hostile_input::push_frame(data);
});
