//! Feeds arbitrary bytes to the BGP decoder the way a TCP stream would:
//! framing, then decoding with both AS widths, then interpreting UPDATEs.
//! Nothing may panic, and whatever decodes must survive a re-encode.
//!
//! Run with `cargo +nightly fuzz run decode corpus seeds` from this directory
//! (`seeds` holds captured BIRD, GoBGP and FRR streams; new inputs go to
//! `corpus`).

#![no_main]

use calico_bgp::attributes::interpret;
use calico_bgp::wire::{Family, Message, decode, message_length};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut stream = data;
    while let Ok(Some(length)) = message_length(stream) {
        let bytes = &stream[..length];
        for four_octet_as in [true, false] {
            if let Ok(message) = decode(bytes, four_octet_as) {
                let again = message.to_bytes(four_octet_as).expect("a decoded message re-encodes");
                assert_eq!(decode(&again, four_octet_as).as_ref(), Ok(&message));
                if let Message::Update(update) = message {
                    let _ = interpret(update, four_octet_as, &[Family::IPV4_UNICAST, Family::IPV6_UNICAST]);
                }
            }
        }
        stream = &stream[length..];
    }
});
