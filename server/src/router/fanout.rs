//! Streaming one upload body to N replicas at once.
//!
//! Each replica gets a bounded channel of pieces ([`sink`]) whose receiving end is the body
//! of its HTTP request ([`PieceBody`]). [`pump`] reads the client's body and hands every
//! piece to every live replica (a `Bytes` clone: a reference count, never a copy), waiting
//! for all of them, so the slowest replica sets the pace and memory stays at
//! `replicas × buffer` pieces whatever the object size. A replica that stops taking pieces
//! (its request failed, it answered early, or it stalled longer than the idle timeout) is
//! dropped from the fan-out and the others go on.
//!
//! The router judges the bytes on their way: it counts them, and hashes them when the caller
//! asks for it ([`Expect::sha256`]; the upload handler asks only when some replica would not
//! check the SHA-256 itself). A replica's body only ends cleanly when the upload is complete,
//! of the declared size, and (when a SHA-256 is expected) of that checksum. In every other
//! case the channel is dropped without its end marker, the body errors, and the replica's
//! request is aborted, so no replica can commit a short or long object, and none that
//! does not check SHA-256 itself can commit a corrupt one.

use std::fmt::Display;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use mictlanx::checksum::Sha256Stream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// One message to a replica.
#[derive(Debug)]
enum Piece {
    Data(Bytes),
    /// The body is complete and verified: end it cleanly.
    End,
}

/// The router's end of one replica's channel.
#[derive(Debug)]
pub(crate) struct Sink {
    tx: mpsc::Sender<Piece>,
    gone: CancellationToken,
}

impl Sink {
    /// A token the replica's request cancels when it has finished (with an answer or an
    /// error), so that the pump stops waiting for it at once.
    pub(crate) fn gone_token(&self) -> CancellationToken {
        self.gone.clone()
    }
}

/// A pair: the pump side and the request-body side of one replica.
pub(crate) fn sink(buffer: usize) -> (Sink, PieceBody) {
    let (tx, rx) = mpsc::channel(buffer.max(1));
    (
        Sink {
            tx,
            gone: CancellationToken::new(),
        },
        PieceBody { rx, ended: false },
    )
}

/// A replica's request body: the pieces, then a clean end only if the pump sent one; an
/// error if the pump dropped the channel first (the upload was aborted).
#[derive(Debug)]
pub(crate) struct PieceBody {
    rx: mpsc::Receiver<Piece>,
    ended: bool,
}

impl Stream for PieceBody {
    type Item = Result<Bytes, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match ready!(self.rx.poll_recv(cx)) {
            Some(Piece::Data(b)) => Poll::Ready(Some(Ok(b))),
            Some(Piece::End) => {
                self.ended = true;
                Poll::Ready(None)
            }
            None => {
                self.ended = true;
                Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "upload aborted by the router",
                ))))
            }
        }
    }
}

/// What the body must turn out to be.
#[derive(Debug, Clone, Default)]
pub(crate) struct Expect {
    /// Exact size in bytes, if known.
    pub size: Option<u64>,
    /// Lowercase SHA-256 hex, if the writer declared one.
    pub sha256: Option<String>,
}

/// Why an upload was aborted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PumpError {
    /// The client's body failed (it disconnected, or sent a malformed body).
    #[error("the upload body failed: {0}")]
    Source(String),
    /// The client sent nothing for too long.
    #[error("the client sent nothing for {0:?}")]
    SourceIdle(Duration),
    /// More bytes than declared.
    #[error("Data size mismatch: received more than the declared {expected} bytes")]
    TooLong {
        /// Declared size.
        expected: u64,
    },
    /// Fewer bytes than declared.
    #[error("Data size mismatch {got} != {expected}")]
    TooShort {
        /// Bytes received.
        got: u64,
        /// Declared size.
        expected: u64,
    },
    /// The bytes do not hash to the declared checksum.
    #[error("Checksum mismatch: declared {expected}, received {got}")]
    Checksum {
        /// Declared SHA-256.
        expected: String,
        /// SHA-256 of what arrived.
        got: String,
    },
    /// Every replica dropped out before the end.
    #[error("every replica stopped receiving the upload")]
    NoSinks,
}

/// Why the pump dropped a replica, index-aligned with the sinks it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DropReason {
    /// Its request ended (answered or failed) before the body did.
    Finished,
    /// It took no piece for the idle timeout.
    Stalled,
}

/// The outcome of [`pump`].
#[derive(Debug)]
pub(crate) struct PumpReport {
    /// Bytes read from the source.
    pub bytes: u64,
    /// `Ok` when the replicas still in the fan-out got a clean, verified end.
    pub result: Result<(), PumpError>,
    /// Per sink: why it was dropped, or `None` if it got everything.
    pub dropped: Vec<Option<DropReason>>,
}

/// Streams `source` to every sink; see the module docs. `idle` bounds both the wait for the
/// client's next piece and the wait for a replica to take one.
///
/// With no sinks at all it still reads and verifies the whole body (a group whose replicas
/// all hold the bytes already).
pub(crate) async fn pump<S, E>(
    source: S,
    sinks: Vec<Sink>,
    expect: &Expect,
    idle: Duration,
) -> PumpReport
where
    S: Stream<Item = Result<Bytes, E>>,
    E: Display,
{
    let had_sinks = !sinks.is_empty();
    let mut dropped: Vec<Option<DropReason>> = vec![None; sinks.len()];
    let mut live: Vec<Option<Sink>> = sinks.into_iter().map(Some).collect();
    let mut hasher = expect.sha256.as_ref().map(|_| Sha256Stream::new());
    let mut bytes = 0u64;
    futures::pin_mut!(source);

    let result = loop {
        let next = match tokio::time::timeout(idle, source.next()).await {
            Err(_) => break Err(PumpError::SourceIdle(idle)),
            Ok(next) => next,
        };
        let piece = match next {
            None => break Ok(()),
            Some(Err(e)) => break Err(PumpError::Source(e.to_string())),
            Some(Ok(piece)) => piece,
        };
        if piece.is_empty() {
            continue;
        }
        bytes += piece.len() as u64;
        if let Some(expected) = expect.size.filter(|n| bytes > *n) {
            break Err(PumpError::TooLong { expected });
        }
        if let Some(h) = hasher.as_mut() {
            h.update(&piece);
        }
        deliver(&mut live, &mut dropped, Piece::Data(piece), idle).await;
        if had_sinks && live.iter().all(Option::is_none) {
            break Err(PumpError::NoSinks);
        }
    };

    let result = result.and_then(|()| verify(expect, bytes, hasher));
    if result.is_ok() {
        deliver(&mut live, &mut dropped, Piece::End, idle).await;
    }
    // On error the remaining sinks are dropped here without an end marker: their bodies
    // fail and the replicas abort their uploads.
    drop(live);
    PumpReport {
        bytes,
        result,
        dropped,
    }
}

fn verify(expect: &Expect, bytes: u64, hasher: Option<Sha256Stream>) -> Result<(), PumpError> {
    if let Some(expected) = expect.size.filter(|n| bytes != *n) {
        return Err(PumpError::TooShort {
            got: bytes,
            expected,
        });
    }
    if let (Some(expected), Some(h)) = (expect.sha256.as_ref(), hasher) {
        let got = h.finalize_hex();
        if !got.eq_ignore_ascii_case(expected) {
            return Err(PumpError::Checksum {
                expected: expected.clone(),
                got,
            });
        }
    }
    Ok(())
}

/// Hands `piece` to every live sink concurrently and drops those that cannot take it.
async fn deliver(
    live: &mut [Option<Sink>],
    dropped: &mut [Option<DropReason>],
    piece: Piece,
    idle: Duration,
) {
    let outcomes = {
        let sends = live.iter().enumerate().filter_map(|(i, s)| {
            let sink = s.as_ref()?;
            let msg = match &piece {
                Piece::Data(b) => Piece::Data(b.clone()),
                Piece::End => Piece::End,
            };
            Some(async move {
                let outcome = tokio::select! {
                    sent = tokio::time::timeout(idle, sink.tx.send(msg)) => match sent {
                        Ok(Ok(())) => None,
                        Ok(Err(_)) => Some(DropReason::Finished),
                        Err(_) => Some(DropReason::Stalled),
                    },
                    _ = sink.gone.cancelled() => Some(DropReason::Finished),
                };
                (i, outcome)
            })
        });
        futures::future::join_all(sends).await
    };
    for (i, outcome) in outcomes {
        if let Some(reason) = outcome {
            live[i] = None;
            dropped[i] = Some(reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::stream;

    fn source(pieces: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, io::Error>> {
        stream::iter(
            pieces
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    async fn collect(body: PieceBody) -> Result<Vec<u8>, io::Error> {
        let mut out = Vec::new();
        futures::pin_mut!(body);
        while let Some(piece) = body.next().await {
            out.extend_from_slice(&piece?);
        }
        Ok(out)
    }

    const IDLE: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn every_sink_gets_every_byte_and_a_clean_end() {
        let (s1, b1) = sink(1);
        let (s2, b2) = sink(1);
        let expect = Expect {
            size: Some(6),
            sha256: Some(mictlanx::checksum::sha256_hex(b"abcdef")),
        };
        let (report, r1, r2) = tokio::join!(
            pump(
                source(&[b"ab", b"", b"cd", b"ef"]),
                vec![s1, s2],
                &expect,
                IDLE
            ),
            collect(b1),
            collect(b2)
        );
        assert_eq!(report.result, Ok(()));
        assert_eq!(report.bytes, 6);
        assert_eq!(report.dropped, vec![None, None]);
        assert_eq!(r1.unwrap(), b"abcdef");
        assert_eq!(r2.unwrap(), b"abcdef");
    }

    #[tokio::test]
    async fn slow_sink_applies_backpressure_and_still_gets_everything() {
        let (fast, fast_body) = sink(1);
        let (slow, slow_body) = sink(1);
        let slow_reader = async move {
            let mut out = Vec::new();
            futures::pin_mut!(slow_body);
            while let Some(piece) = slow_body.next().await {
                tokio::time::sleep(Duration::from_millis(20)).await;
                out.extend_from_slice(&piece.unwrap());
            }
            out
        };
        let pieces: Vec<&'static [u8]> = vec![b"1", b"2", b"3", b"4", b"5"];
        let started = std::time::Instant::now();
        let expect = Expect::default();
        let timed_pump = async {
            let report = pump(source(&pieces), vec![fast, slow], &expect, IDLE).await;
            (report, started.elapsed())
        };
        let ((report, pump_time), fast_got, slow_got) =
            tokio::join!(timed_pump, collect(fast_body), slow_reader);
        assert_eq!(report.result, Ok(()));
        assert_eq!(fast_got.unwrap(), b"12345");
        assert_eq!(slow_got, b"12345");
        // The pump could not run ahead of the slow reader by more than its one-piece buffer:
        // the end marker only fits once the reader has taken piece 5 (after 4 × 20 ms).
        assert!(pump_time >= Duration::from_millis(80), "{pump_time:?}");
    }

    #[tokio::test]
    async fn failing_sink_is_dropped_and_the_others_continue() {
        let (good, good_body) = sink(1);
        let (bad, bad_body) = sink(1);
        let bad_reader = async move {
            // Takes one piece, then its request "fails": the body is dropped.
            futures::pin_mut!(bad_body);
            let first = bad_body.next().await;
            assert!(matches!(first, Some(Ok(_))));
        };
        let expect = Expect::default();
        let (report, good_got, ()) = tokio::join!(
            pump(
                source(&[b"a", b"b", b"c", b"d"]),
                vec![good, bad],
                &expect,
                IDLE
            ),
            collect(good_body),
            bad_reader
        );
        assert_eq!(report.result, Ok(()));
        assert_eq!(good_got.unwrap(), b"abcd");
        assert_eq!(report.dropped, vec![None, Some(DropReason::Finished)]);
    }

    #[tokio::test]
    async fn sink_whose_request_finished_early_is_dropped_at_once() {
        let (s, body) = sink(1);
        let gone = s.gone_token();
        // The replica answered without reading its body (e.g. an early 400): it is not read
        // any more, and would block the pump until the idle timeout without the token.
        gone.cancel();
        let report = pump(
            source(&[b"a", b"b", b"c"]),
            vec![s],
            &Expect::default(),
            IDLE,
        )
        .await;
        assert_eq!(report.result, Err(PumpError::NoSinks));
        assert_eq!(report.dropped, vec![Some(DropReason::Finished)]);
        drop(body);
    }

    #[tokio::test]
    async fn stalled_sink_is_dropped_after_the_idle_timeout() {
        let (stalled, stalled_body) = sink(1);
        let (good, good_body) = sink(1);
        let expect = Expect::default();
        let (report, good_got) = tokio::join!(
            pump(
                source(&[b"a", b"b", b"c"]),
                vec![stalled, good],
                &expect,
                Duration::from_millis(100)
            ),
            collect(good_body)
        );
        assert_eq!(report.result, Ok(()));
        assert_eq!(good_got.unwrap(), b"abc");
        assert_eq!(report.dropped, vec![Some(DropReason::Stalled), None]);
        drop(stalled_body);
    }

    #[tokio::test]
    async fn wrong_size_or_checksum_aborts_every_body() {
        let cases: Vec<(Vec<&'static [u8]>, Expect, PumpError)> = vec![
            (
                vec![b"abc"],
                Expect {
                    size: Some(4),
                    sha256: None,
                },
                PumpError::TooShort {
                    got: 3,
                    expected: 4,
                },
            ),
            (
                vec![b"ab", b"cde"],
                Expect {
                    size: Some(4),
                    sha256: None,
                },
                PumpError::TooLong { expected: 4 },
            ),
            (
                vec![b"abc"],
                Expect {
                    size: Some(3),
                    sha256: Some(mictlanx::checksum::sha256_hex(b"abd")),
                },
                PumpError::Checksum {
                    expected: mictlanx::checksum::sha256_hex(b"abd"),
                    got: mictlanx::checksum::sha256_hex(b"abc"),
                },
            ),
        ];
        for (pieces, expect, error) in cases {
            let (s, body) = sink(8);
            let (report, got) =
                tokio::join!(pump(source(&pieces), vec![s], &expect, IDLE), collect(body));
            assert_eq!(report.result, Err(error));
            assert_eq!(got.unwrap_err().kind(), io::ErrorKind::ConnectionAborted);
        }
    }

    #[tokio::test]
    async fn source_error_aborts_the_bodies() {
        let (s, body) = sink(8);
        let src = stream::iter(vec![
            Ok(Bytes::from_static(b"ab")),
            Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "client went away",
            )),
        ]);
        let expect = Expect::default();
        let (report, got) = tokio::join!(pump(src, vec![s], &expect, IDLE), collect(body));
        assert!(
            matches!(report.result, Err(PumpError::Source(m)) if m.contains("client went away"))
        );
        assert!(got.is_err());
    }

    #[tokio::test]
    async fn without_sinks_the_body_is_still_verified() {
        let expect = Expect {
            size: Some(3),
            sha256: None,
        };
        let ok = pump(source(&[b"abc"]), vec![], &expect, IDLE).await;
        assert_eq!(ok.result, Ok(()));
        let short = pump(source(&[b"ab"]), vec![], &expect, IDLE).await;
        assert!(matches!(short.result, Err(PumpError::TooShort { .. })));
    }
}
