//! The CSV decoder of imports: bytes in any chunking to records with their line numbers.
//! The bytes are decoded (UTF-8, or GB18030 as Chinese spreadsheets save CSV; sniffed
//! when not given) and split into records incrementally (`csv-core`), so an upload is read
//! as it arrives and memory stays bounded whatever the file's size.
use crate::transfer::import::Line;
use encoding_rs::{CoderResult, Encoding};
use std::collections::VecDeque;

/// Longest record (bytes of text) and most cells in one: beyond, the line is reported.
const MAX_RECORD_BYTES: usize = 64 * 1024;
const MAX_CELLS: usize = 500;
/// Bytes looked at to tell UTF-8 from GB18030 when the client does not say.
const SNIFF_BYTES: usize = 64 * 1024;

/// CSV records out of a byte stream in any chunking.
pub struct Records {
    encoding: Option<&'static Encoding>,
    decoder: Option<encoding_rs::Decoder>,
    /// Raw bytes held until the encoding is known.
    held: Vec<u8>,
    decoded: String,
    /// Decoded bytes not yet parsed.
    pending: Vec<u8>,
    parser: csv_core::Reader,
    field: Vec<u8>,
    record: Vec<String>,
    record_bytes: usize,
    too_long: bool,
    in_record: bool,
    /// The line the reader is on; the one the current record started on.
    lines: LineCounter,
    /// Quote characters of the current record (odd at its end: a quote left open).
    quotes: usize,
    start_line: u64,
    /// The decoder met bytes that are not valid in the encoding.
    replaced: bool,
    ready: VecDeque<Line>,
    /// The file has ended.
    done: bool,
}

impl Records {
    /// A reader of the given encoding, or (None) one that tells UTF-8 from GB18030.
    pub fn new(encoding: Option<&'static Encoding>) -> Self {
        Self {
            encoding,
            decoder: encoding.map(Encoding::new_decoder),
            held: Vec::new(),
            decoded: String::new(),
            pending: Vec::new(),
            parser: csv_core::Reader::new(),
            field: Vec::new(),
            record: Vec::new(),
            record_bytes: 0,
            too_long: false,
            in_record: false,
            lines: LineCounter { line: 1, after_cr: false },
            quotes: 0,
            start_line: 1,
            replaced: false,
            ready: VecDeque::new(),
            done: false,
        }
    }

    /// The encoding the file is read in (known once enough bytes came, or at the end).
    pub fn encoding(&self) -> &'static str {
        // A byte order mark may have switched the decoder (UTF-16).
        self.decoder.as_ref().map(encoding_rs::Decoder::encoding).or(self.encoding).map_or("UTF-8", Encoding::name)
    }

    /// Feeds bytes of the file.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.decoder.is_none() {
            self.held.extend_from_slice(bytes);
            if self.held.len() < SNIFF_BYTES {
                return;
            }
            self.sniff();
            let held = std::mem::take(&mut self.held);
            self.decode(&held, false);
        } else {
            self.decode(bytes, false);
        }
    }

    /// Ends the file (once; later calls do nothing).
    pub fn finish(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        if self.decoder.is_none() {
            self.sniff();
        }
        let held = std::mem::take(&mut self.held);
        self.decode(&held, true);
    }

    /// Whether the file has ended.
    pub fn done(&self) -> bool {
        self.done
    }

    /// The next complete record.
    pub fn next_line(&mut self) -> Option<Line> {
        self.ready.pop_front()
    }

    /// UTF-8 (with or without a byte order mark) when the first bytes are valid UTF-8
    /// (a sequence cut at the end of the sample allowed); GB18030 when they are not but
    /// are valid GB18030; else UTF-8 still (a stray byte in a UTF-8 file: the lines that
    /// hold one are reported, instead of the whole file read as GB18030 mojibake).
    fn sniff(&mut self) {
        let utf8 = match std::str::from_utf8(&self.held) {
            Ok(_) => true,
            Err(e) => e.error_len().is_none(),
        };
        let gb18030 = !utf8 && {
            let mut decoder = encoding_rs::GB18030.new_decoder_without_bom_handling();
            let mut sink = String::with_capacity(self.held.len() * 2 + 16);
            let (result, _) = decoder.decode_to_string_without_replacement(&self.held, &mut sink, false);
            !matches!(result, encoding_rs::DecoderResult::Malformed(..))
        };
        let encoding = if gb18030 { encoding_rs::GB18030 } else { encoding_rs::UTF_8 };
        self.encoding = Some(encoding);
        self.decoder = Some(encoding.new_decoder());
    }

    fn decode(&mut self, mut bytes: &[u8], last: bool) {
        let Some(decoder) = self.decoder.as_mut() else { return };
        loop {
            let room = decoder.max_utf8_buffer_length(bytes.len()).unwrap_or(bytes.len() * 4 + 16);
            self.decoded.reserve(room);
            let (result, read, replaced) = decoder.decode_to_string(bytes, &mut self.decoded, last);
            self.replaced |= replaced;
            bytes = &bytes[read..];
            if result == CoderResult::InputEmpty {
                break;
            }
        }
        self.pending.extend_from_slice(self.decoded.as_bytes());
        self.decoded.clear();
        self.parse(last);
    }

    fn parse(&mut self, last: bool) {
        let mut out = [0u8; 8192];
        let mut at = 0;
        loop {
            if !self.in_record {
                // Line breaks between records (and blank lines) are passed here, counted,
                // so a record's line is where its first cell starts.
                while let Some(&b) = self.pending.get(at).filter(|b| matches!(b, b'\r' | b'\n')) {
                    self.lines.count(&[b]);
                    at += 1;
                }
                if at == self.pending.len() {
                    break;
                }
                self.in_record = true;
                self.start_line = self.lines.line;
            }
            let input = &self.pending[at..];
            let at_end = input.is_empty();
            // csv-core reads an empty input as the end of the data: only at the end.
            if at_end && !last {
                break;
            }
            let (result, read, written) = self.parser.read_field(input, &mut out);
            let consumed = &self.pending[at..at + read];
            self.quotes += consumed.iter().filter(|&&b| b == b'"').count();
            self.lines.count(consumed);
            at += read;
            self.record_bytes += written;
            if self.record_bytes > MAX_RECORD_BYTES || self.record.len() >= MAX_CELLS {
                self.too_long = true;
            } else {
                self.field.extend_from_slice(&out[..written]);
            }
            match result {
                csv_core::ReadFieldResult::InputEmpty => {
                    // At the end, one more call with no input completes the last record.
                    if at_end {
                        break;
                    }
                }
                csv_core::ReadFieldResult::OutputFull => {}
                csv_core::ReadFieldResult::Field { record_end } => {
                    let field = std::mem::take(&mut self.field);
                    if !self.too_long {
                        self.record.push(String::from_utf8_lossy(&field).into_owned());
                    }
                    if record_end {
                        self.emit(at_end);
                    }
                }
                csv_core::ReadFieldResult::End => break,
            }
        }
        self.pending.drain(..at);
    }

    /// Emits the current record; `at_end`: it was ended by the end of the file.
    fn emit(&mut self, at_end: bool) {
        let cells = std::mem::take(&mut self.record);
        // A quoted cell left open at the end of the file swallows every line after it.
        let unclosed = at_end && self.quotes % 2 == 1;
        self.quotes = 0;
        let unreadable = if unclosed {
            Some("a quoted cell is not closed: the lines after its opening quote were read into it".to_string())
        } else if self.too_long {
            Some(format!("the line is longer than {} KiB or has more than {MAX_CELLS} cells", MAX_RECORD_BYTES / 1024))
        } else if self.replaced && cells.iter().any(|c| c.contains('\u{fffd}')) {
            Some(format!(
                "the line has bytes that are not valid {}; say the file's encoding with ?encoding=",
                self.encoding()
            ))
        } else {
            None
        };
        self.ready.push_back(Line {
            number: i64::try_from(self.start_line).unwrap_or(i64::MAX),
            cells: if unreadable.is_some() { Vec::new() } else { cells },
            unreadable,
        });
        self.record_bytes = 0;
        self.too_long = false;
        self.in_record = false;
    }
}

/// Line numbers of a file: `\n`, `\r\n` and a lone `\r` (old Mac files) end a line each.
struct LineCounter {
    line: u64,
    /// The last byte counted was a `\r` (a `\n` right after it ends the same line).
    after_cr: bool,
}

impl LineCounter {
    fn count(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match b {
                b'\r' => self.line += 1,
                b'\n' if !self.after_cr => self.line += 1,
                _ => {}
            }
            self.after_cr = b == b'\r';
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_in_chunks(bytes: &[u8], size: usize) -> Vec<(i64, Vec<String>)> {
        let mut records = Records::new(None);
        let mut out = Vec::new();
        for chunk in bytes.chunks(size) {
            records.push(chunk);
            while let Some(l) = records.next_line() {
                out.push((l.number, l.cells));
            }
        }
        records.finish();
        while let Some(l) = records.next_line() {
            out.push((l.number, l.cells));
        }
        out
    }

    /// Whatever the chunking, the same records on the same lines: quoted separators and
    /// line breaks, CRLF and LF, multi-byte characters cut anywhere, blank lines.
    #[test]
    fn records_do_not_depend_on_how_the_bytes_arrive() {
        let text =
            "姓名,地址\r\n李雷,\"上海, 徐汇\r\n88号\"\r\n\r\n韩梅梅,\"说\"\"好\"\"\"\n王,x\r\n赵,\"\"\r\n末行,无换行";
        let whole = read_in_chunks(text.as_bytes(), text.len());
        assert_eq!(whole.len(), 6, "{whole:?}");
        assert_eq!(whole[1], (2, vec!["李雷".to_string(), "上海, 徐汇\r\n88号".to_string()]));
        assert_eq!(whole[2], (5, vec!["韩梅梅".to_string(), "说\"好\"".to_string()]));
        assert_eq!(whole[5], (8, vec!["末行".to_string(), "无换行".to_string()]));
        for size in 1..text.len() {
            assert_eq!(read_in_chunks(text.as_bytes(), size), whole, "chunks of {size}");
        }
    }

    /// A long file read in chunks that cut records, CRLF pairs and characters at every
    /// offset: no record is split or merged.
    #[test]
    fn a_long_file_splits_the_same_in_any_chunking() {
        let mut text = String::from("name,phone,address\r\n");
        for i in 0..3000 {
            text.push_str(&format!("客户{i},1380000{i:04},\"某市某区, {i}号\"\r\n"));
        }
        let whole = read_in_chunks(text.as_bytes(), text.len());
        assert_eq!(whole.len(), 3001);
        for size in [7, 4096, 8191, 8192, 8193, 65_535, 65_536, 65_537, 100_000] {
            let got = read_in_chunks(text.as_bytes(), size);
            if let Some((a, b)) = got.iter().zip(&whole).find(|(a, b)| a != b) {
                panic!("chunks of {size}: {a:?} != {b:?}");
            }
            assert_eq!(got.len(), whole.len(), "chunks of {size}");
            for (a, b) in got.iter().zip(&whole) {
                assert_eq!(a, b, "chunks of {size}");
            }
        }
    }
}
