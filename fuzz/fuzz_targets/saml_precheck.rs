//! The SAML pre-checks in front of samael: the body size cap of the ACS
//! endpoint (`http::read_body` with a cap: refused exactly when the body
//! is larger, however it is chunked), and the pre-scan of the Response
//! (never panics; any DOCTYPE or ENTITY declaration, in any case, is
//! refused). IdP metadata gets the same DOCTYPE refusal.
#![no_main]

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use authgate::saml::Error;
use bytes::Bytes;
use http_body::Frame;
use libfuzzer_sys::fuzz_target;

fn contains_ci(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// A request body delivered in the chunks the input cuts it into.
struct Chunks(VecDeque<Bytes>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

thread_local! {
    /// `read_body` bounds the time a body may take (a tokio timer), as it
    /// runs in the server: one current-thread runtime per fuzzing thread.
    static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime");
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    RT.with(|rt| rt.block_on(f))
}

fuzz_target!(|data: &[u8]| {
    // Size cap: first two bytes are the cap, the rest is cut at 0xff bytes.
    if data.len() >= 2 {
        let cap = usize::from(u16::from_le_bytes([data[0], data[1]])) % 512;
        let body = &data[2..];
        let chunks: VecDeque<Bytes> = body
            .split(|&b| b == 0xff)
            .map(Bytes::copy_from_slice)
            .collect();
        let total: usize = chunks.iter().map(Bytes::len).sum();
        let got = block_on(authgate::http::read_body(Chunks(chunks), cap));
        match got {
            Ok(b) => {
                assert!(total <= cap, "{total} bytes read under a {cap}-byte cap");
                assert_eq!(b.len(), total);
            }
            Err(authgate::http::BodyError::TooLarge) => assert!(total > cap),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }

    let Ok(xml) = std::str::from_utf8(data) else {
        return;
    };
    let doctype = contains_ci(xml, "<!DOCTYPE");
    let entity = contains_ci(xml, "<!ENTITY");
    match authgate::fuzzing::saml_prescan(xml) {
        Ok(()) => assert!(!doctype && !entity, "a DTD got through: {xml:?}"),
        Err(Error::Doctype) | Err(Error::Entity) => {}
        Err(_) => assert!(!doctype, "DOCTYPE not refused first: {xml:?}"),
    }
    if doctype || entity {
        assert!(authgate::saml::metadata::parse(xml).is_err());
    }
});
