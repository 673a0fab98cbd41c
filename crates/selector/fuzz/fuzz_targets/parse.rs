//! Parses arbitrary input. Rejections must point at a character boundary
//! inside the input; acceptances must have a canonical form that parses,
//! is stable after one more round (`!(!x)` prints as `!!x`, which then
//! collapses, as in Calico), and selects the same items.

#![no_main]

use std::collections::BTreeMap;

use calico_selector::Selector;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Selector::parse(text) {
        Err(err) => {
            assert!(err.position <= text.len(), "{text:?}: {err}");
            assert!(text.is_char_boundary(err.position), "{text:?}: {err}");
        }
        Ok(sel) => {
            let again = Selector::parse(sel.as_str())
                .unwrap_or_else(|err| panic!("canonical {:?} of {text:?}: {err}", sel.as_str()));
            let third = Selector::parse(again.as_str()).expect("second canonical form parses");
            assert_eq!(
                third.as_str(),
                again.as_str(),
                "canonical form of {text:?} is unstable"
            );
            assert_eq!(third.unique_id(), again.unique_id());

            // Label maps built from the keys the selector mentions, so that
            // evaluation goes past the first clause.
            let keys = sel.label_keys();
            let maps = [
                BTreeMap::new(),
                keys.iter()
                    .map(|k| (k.to_string(), String::new()))
                    .collect(),
                keys.iter()
                    .map(|k| (k.to_string(), (*k).to_owned()))
                    .collect(),
            ];
            for labels in &maps {
                assert_eq!(
                    sel.evaluate(labels),
                    again.evaluate(labels),
                    "{text:?} and its canonical form disagree on {labels:?}"
                );
            }
        }
    }
});
