//! Line framing of the runner's output. The engine delivers each stream (stdout, stderr) in
//! chunks with no line alignment: a chunk may hold several lines or part of one, and a line may
//! span chunks. One [`LineBuffer`] per stream reassembles lines; nothing here searches a single
//! read for a marker (which breaks as soon as a message straddles two reads).

/// A line longer than the configured limit (a protocol violation).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a line exceeds {limit} bytes")]
pub struct LineTooLong {
    pub limit: usize,
}

/// Accumulates one stream's bytes and yields complete lines without their `\n`.
#[derive(Debug)]
pub struct LineBuffer {
    pending: Vec<u8>,
    max_line_bytes: usize,
}

impl LineBuffer {
    pub fn new(max_line_bytes: usize) -> Self {
        Self {
            pending: Vec::new(),
            max_line_bytes,
        }
    }

    /// Appends `chunk` and returns every line it completed, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Vec<u8>>, LineTooLong> {
        let mut lines = Vec::new();
        let mut rest = chunk;
        while let Some(position) = rest.iter().position(|byte| *byte == b'\n') {
            let (head, tail) = rest.split_at(position);
            self.append(head)?;
            lines.push(std::mem::take(&mut self.pending));
            rest = &tail[1..];
        }
        self.append(rest)?;
        Ok(lines)
    }

    /// Bytes of an unfinished line (at end of stream: the runner died mid-message).
    pub fn unfinished(&self) -> usize {
        self.pending.len()
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(), LineTooLong> {
        if self.pending.len() + bytes.len() > self.max_line_bytes {
            self.pending.clear();
            return Err(LineTooLong {
                limit: self.max_line_bytes,
            });
        }
        self.pending.extend_from_slice(bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(buffer: &mut LineBuffer, chunks: &[&[u8]]) -> Vec<String> {
        chunks
            .iter()
            .flat_map(|chunk| buffer.push(chunk).unwrap())
            .map(|line| String::from_utf8(line).unwrap())
            .collect()
    }

    #[test]
    fn several_lines_in_one_chunk() {
        let mut buffer = LineBuffer::new(100);
        assert_eq!(feed(&mut buffer, &[b"a\nbb\nccc\n"]), ["a", "bb", "ccc"]);
        assert_eq!(buffer.unfinished(), 0);
    }

    #[test]
    fn a_line_spanning_chunks() {
        let mut buffer = LineBuffer::new(100);
        assert_eq!(
            feed(&mut buffer, &[b"{\"ty", b"pe\":1}", b"\n{\"x", b"\":2}\n"]),
            ["{\"type\":1}", "{\"x\":2}"]
        );
    }

    #[test]
    fn every_split_point_gives_the_same_lines() {
        let data = b"first line\nsecond\n\nfourth \xe2\x80\xa6 line\n";
        for split in 0..=data.len() {
            for split2 in split..=data.len() {
                let mut buffer = LineBuffer::new(100);
                let lines = feed(
                    &mut buffer,
                    &[&data[..split], &data[split..split2], &data[split2..]],
                );
                assert_eq!(lines, ["first line", "second", "", "fourth … line"]);
            }
        }
    }

    #[test]
    fn a_partial_line_waits_for_its_end() {
        let mut buffer = LineBuffer::new(100);
        assert!(buffer.push(b"no newline yet").unwrap().is_empty());
        assert_eq!(buffer.unfinished(), 14);
    }

    #[test]
    fn an_overlong_line_is_an_error_even_across_chunks() {
        let mut buffer = LineBuffer::new(8);
        assert!(buffer.push(b"12345").unwrap().is_empty());
        assert_eq!(buffer.push(b"6789\n"), Err(LineTooLong { limit: 8 }));
        let mut buffer = LineBuffer::new(8);
        assert_eq!(buffer.push(b"12345678\n").unwrap(), [b"12345678".to_vec()]);
    }
}
