//! Issue 12's deep field tables, in every place a client can put one, are refused with the protocol's error before
//! the recursive decoder sees them, on a tokio worker's stack; and the corpus and dictionaries keep them.

use warren_fuzz::seeds::{self, DEEP};
use warren_fuzz::smoke::{self, STACK};
use warren_fuzz::TARGETS;
use warren_protocol::content::{decode_properties, parse_content_header_ref};
use warren_protocol::{decode_field_table, decode_method};

fn on_worker_stack(f: impl FnOnce() + Send + 'static) {
    let thread = std::thread::Builder::new().stack_size(STACK).spawn(f);
    assert!(thread.is_ok_and(|t| t.join().is_ok()), "the check panicked");
}

#[test]
fn deep_tables_in_method_arguments_are_a_501() {
    on_worker_stack(|| {
        for arrays in [false, true] {
            for (name, payload) in seeds::methods_with_table(&seeds::nested_table(DEEP, arrays)) {
                let err = decode_method(&payload).expect_err(name);
                assert_eq!(err.reply_code(), 501, "{name}: {err}");
                assert!(err.text.contains("nested deeper"), "{name}: {err}");
            }
        }
    });
}

#[test]
fn deep_headers_and_sasl_tables_are_refused() {
    on_worker_stack(|| {
        for arrays in [false, true] {
            let table = seeds::nested_table(DEEP, arrays);
            let header = seeds::content_header_with_headers(&table);
            assert_eq!(
                parse_content_header_ref(&header).unwrap_err().reply_code(),
                501
            );
            assert_eq!(
                decode_properties(&header[12..]).unwrap_err().reply_code(),
                502
            );
            assert!(decode_field_table(&table).is_none());
        }
    });
}

#[test]
fn the_corpus_keeps_every_deep_nesting_case() {
    for (target, name, bytes) in seeds::deep_nesting() {
        let target = TARGETS.iter().find(|t| t.name == target).expect("a target");
        let corpus = smoke::corpus(target);
        let kept = corpus.iter().find(|(file, _)| *file == name);
        assert_eq!(
            kept.map(|(_, b)| b),
            Some(&bytes),
            "fuzz/corpus/{}/{name} missing or stale",
            target.name
        );
    }
}

#[test]
fn every_protocol_dictionary_has_the_nesting_words() {
    for target in &TARGETS[..3] {
        let words = smoke::dictionary(target).unwrap_or_else(|e| panic!("{e}"));
        for word in [&b"\x01kF"[..], b"A\x00\x00", b"F\x00\x00\x00\x00"] {
            assert!(
                words
                    .iter()
                    .any(|w| w.windows(word.len()).any(|x| x == word)),
                "{}: {word:?}",
                target.name
            );
        }
    }
}
