//! Server-sent events framing (the WHATWG `text/event-stream` rules), keeping each event's
//! frame as the bytes that arrived so a proxy can pass it on unchanged.
//!
//! Lines end with CRLF, LF or CR; an empty line ends an event. `event:` names it, `data:`
//! lines are joined with `\n`, lines starting with `:` are comments, other fields are kept
//! in the frame but otherwise ignored. A block without `data` dispatches nothing.

use bytes::{Bytes, BytesMut};

/// One event: its frame as received (the terminating empty line included), its name and
/// its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The bytes of the event as they came.
    pub raw: Bytes,
    /// The `event:` field, or empty.
    pub name: String,
    /// The `data:` lines, joined with `\n`.
    pub data: Bytes,
}

/// Cuts a byte stream into [`Frame`]s.
#[derive(Debug, Default)]
pub struct Framer {
    buffer: BytesMut,
    /// How far the buffer has been searched for the end of an event.
    scanned: usize,
}

impl Framer {
    /// A framer with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes as they arrive.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
    }

    /// Whether bytes that end no event yet are buffered.
    pub fn has_partial(&self) -> bool {
        self.buffer.iter().any(|b| !matches!(b, b'\r' | b'\n'))
    }

    /// The next complete event, if one has arrived. Blocks without data (comments, a lone
    /// `id:`) are consumed and skipped.
    pub fn next_frame(&mut self) -> Option<Frame> {
        loop {
            let end = self.event_end()?;
            let raw = self.buffer.split_to(end).freeze();
            self.scanned = 0;
            if let Some(frame) = parse(raw) {
                return Some(frame);
            }
        }
    }

    /// Where the first complete event ends (just past its empty line), if it has arrived.
    fn event_end(&mut self) -> Option<usize> {
        let buffer = &self.buffer;
        let mut line_start = self.scanned;
        let mut i = self.scanned;
        while i < buffer.len() {
            let byte = buffer[i];
            if byte != b'\n' && byte != b'\r' {
                i += 1;
                continue;
            }
            let terminator = match (byte, buffer.get(i + 1)) {
                (b'\r', Some(b'\n')) => 2,
                // A CR at the end of what arrived may be the first half of a CRLF.
                (b'\r', None) => return None,
                _ => 1,
            };
            let empty = i == line_start;
            i += terminator;
            if empty {
                return Some(i);
            }
            line_start = i;
            self.scanned = line_start;
        }
        None
    }
}

/// The event in `raw`, or `None` when the block carries no data.
fn parse(raw: Bytes) -> Option<Frame> {
    let mut name = String::new();
    let mut data: Option<BytesMut> = None;
    let mut single: Option<Bytes> = None;
    for (start, end) in lines(&raw) {
        let line = &raw[start..end];
        if line.is_empty() || line[0] == b':' {
            continue;
        }
        let (field, value, value_start) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let skip = usize::from(line.get(colon + 1) == Some(&b' '));
                (
                    &line[..colon],
                    &line[colon + 1 + skip..],
                    start + colon + 1 + skip,
                )
            }
            None => (line, &line[line.len()..], end),
        };
        match field {
            b"event" => name = String::from_utf8_lossy(value).into_owned(),
            b"data" => match (&mut data, &single) {
                (None, None) => single = Some(raw.slice(value_start..end)),
                (None, Some(first)) => {
                    let mut joined = BytesMut::from(&first[..]);
                    joined.extend_from_slice(b"\n");
                    joined.extend_from_slice(value);
                    data = Some(joined);
                }
                (Some(joined), _) => {
                    joined.extend_from_slice(b"\n");
                    joined.extend_from_slice(value);
                }
            },
            _ => {}
        }
    }
    let data = match (data, single) {
        (Some(joined), _) => joined.freeze(),
        (None, Some(single)) => single,
        (None, None) => return None,
    };
    Some(Frame { raw, name, data })
}

/// The (start, end) of each line of `raw`, terminators excluded.
fn lines(raw: &[u8]) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'\r' if raw.get(i + 1) == Some(&b'\n') => {
                found.push((start, i));
                i += 2;
                start = i;
            }
            b'\r' | b'\n' => {
                found.push((start, i));
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < raw.len() {
        found.push((start, raw.len()));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(chunks: &[&str]) -> Vec<Frame> {
        let mut framer = Framer::new();
        let mut out = Vec::new();
        for chunk in chunks {
            framer.push(chunk.as_bytes());
            while let Some(frame) = framer.next_frame() {
                out.push(frame);
            }
        }
        out
    }

    #[test]
    fn events_split_anywhere_come_out_whole_and_unchanged() {
        let stream = "event: ping\ndata: {\"type\":\"ping\"}\n\n: comment\n\nevent: message_stop\r\ndata: {}\r\n\r\ndata: a\ndata:b\nid: 7\n\n";
        for cut in 0..stream.len() {
            let got = frames(&[&stream[..cut], &stream[cut..]]);
            assert_eq!(got.len(), 3, "cut at {cut}");
            assert_eq!(got[0].raw, "event: ping\ndata: {\"type\":\"ping\"}\n\n");
            assert_eq!(got[0].name, "ping");
            assert_eq!(got[0].data, "{\"type\":\"ping\"}");
            assert_eq!(got[1].raw, "event: message_stop\r\ndata: {}\r\n\r\n");
            assert_eq!(got[1].data, "{}");
            assert_eq!(got[2].name, "");
            assert_eq!(got[2].data, "a\nb");
        }
    }

    #[test]
    fn a_partial_event_waits_for_its_end() {
        let mut framer = Framer::new();
        framer.push(b"event: ping\ndata: {}\n");
        assert_eq!(framer.next_frame(), None);
        assert!(framer.has_partial());
        framer.push(b"\n");
        assert!(framer.next_frame().is_some());
        assert!(!framer.has_partial());
    }
}
