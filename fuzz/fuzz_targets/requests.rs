//! Every request type of the public API, as arbitrary wire bytes, into the real server over
//! gRPC: decoding, conversion, validation and the handler behind it. The first three bytes
//! pick the method, the calling organisation and the asserted role; the rest is the
//! message. No input may get INTERNAL or UNKNOWN, panic the server (a panic aborts the
//! process), or get an error that echoes more than a short prefix of what was sent.
#![no_main]

use gezinsdossier_fuzz::{ORGANISATIONS, ROLES, call, check, methods};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [method, organisation, role, body @ ..] = data else { return };
    let methods = methods();
    let method = &methods[usize::from(*method) % methods.len()];
    let organisation = ORGANISATIONS[usize::from(*organisation) % ORGANISATIONS.len()];
    let role = ROLES[usize::from(*role) % ROLES.len()];
    check(&call(method, organisation, role, body.to_vec()));
});
