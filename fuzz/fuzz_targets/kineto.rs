#![no_main]
//! `phantom_gpu::fuzzing::kineto` on every input; see fuzz/README.md.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = phantom_gpu::fuzzing::kineto(data);
});
