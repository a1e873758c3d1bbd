//! Text from uploaded documents.
//!
//! Plain-text kinds are returned as they are (lossy UTF-8, UTF-16 with a BOM is decoded),
//! HTML is reduced to its readable text, PDF goes through `pdf-extract` (guarded by
//! `catch_unwind`, since that crate can panic on odd input), DOCX is read from
//! `word/document.xml` with a small hand-written scanner. Images need no text. Other
//! office and media formats are refused with a clear error.
//!
//! Extraction is CPU-bound and synchronous: call it from `spawn_blocking` on a server.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::kind::{FileKind, find};
use crate::report::Cause;

mod docx;
mod html;
mod markup;

use markup::tidy_lines;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Extracted {
    Text(String),
    /// Images need no text; the caller passes the bytes to the model as they are.
    Image,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ExtractError {
    #[error("text extraction from .{0} files is not supported")]
    Unsupported(FileKind),
    #[error("unreadable {kind}: {reason}")]
    Unreadable {
        kind: FileKind,
        /// What is wrong: what this module found, or the error of the parser that read it.
        #[source]
        reason: Cause,
    },
}

/// The text of `bytes`, a file of `kind`: what each kind gives is in the module doc.
pub(crate) fn extract(kind: FileKind, bytes: &[u8]) -> Result<Extracted, ExtractError> {
    match kind {
        FileKind::Txt
        | FileKind::Md
        | FileKind::Srt
        | FileKind::Json
        | FileKind::Csv
        | FileKind::Eml => decode_text(kind, bytes).map(Extracted::Text),
        FileKind::Html => decode_text(kind, bytes).map(|s| Extracted::Text(html::to_text(&s))),
        FileKind::Pdf => pdf_text(bytes).map(Extracted::Text),
        FileKind::Docx => docx::text(bytes).map(Extracted::Text),
        FileKind::Png | FileKind::Jpg | FileKind::Webp | FileKind::Gif => Ok(Extracted::Image),
        FileKind::Doc
        | FileKind::Ppt
        | FileKind::Pptx
        | FileKind::Xls
        | FileKind::Xlsx
        | FileKind::Mp3
        | FileKind::Mp4
        | FileKind::Other => Err(ExtractError::Unsupported(kind)),
    }
}

/// Number of whitespace-separated words.
pub(crate) fn word_count(text: &str) -> usize {
    text.split_whitespace().count()
}

/// A file of `kind` whose bytes this module found wrong, saying why in at most 200 bytes.
fn unreadable(kind: FileKind, reason: impl Into<String>) -> ExtractError {
    let mut reason: String = reason.into();
    if reason.len() > 200 {
        let mut cut = 200;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
        reason.push('…');
    }
    ExtractError::Unreadable {
        kind,
        reason: Cause::message(reason),
    }
}

/// A file of `kind` a parser could not read, with the parser's error.
fn unparsable(kind: FileKind, reason: Cause) -> ExtractError {
    ExtractError::Unreadable { kind, reason }
}

// ---------------------------------------------------------------------------------------------
// Plain text

/// UTF-8 (lossy, BOM stripped), or UTF-16 when it starts with a BOM. NUL bytes in anything
/// else mean the file is not text whatever its name says.
fn decode_text(kind: FileKind, bytes: &[u8]) -> Result<String, ExtractError> {
    let utf16 = |be: bool| -> String {
        let units = bytes[2..].chunks_exact(2).map(|c| {
            if be {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_le_bytes([c[0], c[1]])
            }
        });
        char::decode_utf16(units)
            .map(|r| r.unwrap_or('\u{FFFD}'))
            .collect()
    };
    let text = if bytes.starts_with(&[0xFF, 0xFE]) {
        utf16(false)
    } else if bytes.starts_with(&[0xFE, 0xFF]) {
        utf16(true)
    } else {
        if bytes.contains(&0) {
            return Err(unreadable(kind, "contains NUL bytes, not a text file"));
        }
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        String::from_utf8_lossy(bytes).into_owned()
    };
    if text.contains('\0') {
        return Err(unreadable(kind, "contains NUL characters, not a text file"));
    }
    Ok(text)
}

// ---------------------------------------------------------------------------------------------
// PDF

fn pdf_text(bytes: &[u8]) -> Result<String, ExtractError> {
    if !bytes.starts_with(b"%PDF-") && find(&bytes[..bytes.len().min(1024)], b"%PDF-").is_none() {
        return Err(unreadable(FileKind::Pdf, "no %PDF- header"));
    }
    let result = catch_unwind(AssertUnwindSafe(|| {
        pdf_extract::extract_text_from_mem(bytes)
    }));
    match result {
        Ok(Ok(text)) => Ok(tidy_lines(&text)),
        Ok(Err(e)) => Err(unparsable(FileKind::Pdf, Cause::new(e))),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown cause".into());
            Err(unreadable(FileKind::Pdf, format!("parser failed: {msg}")))
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::io::Write;

    /// The text `extract` finds in `bytes` of `kind`; panics unless it finds text.
    pub(super) fn text(kind: FileKind, bytes: &[u8]) -> String {
        match extract(kind, bytes) {
            Ok(Extracted::Text(t)) => t,
            other => panic!("expected text from {kind:?}, got {other:?}"),
        }
    }

    /// A minimal one-page PDF with a Helvetica font, one text line per entry in `lines`,
    /// and a correctly computed xref table.
    fn make_pdf(lines: &[&str]) -> Vec<u8> {
        let mut content = String::from("BT /F1 12 Tf 72 712 Td");
        for (i, line) in lines.iter().enumerate() {
            if i > 0 {
                content.push_str(" 0 -20 Td");
            }
            content.push_str(&format!(" ({line}) Tj"));
        }
        content.push_str(" ET");
        pdf_with_content(&content, "")
    }

    /// One page whose content stream is `content`; `extra` goes into the catalog dictionary.
    fn pdf_with_content(content: &str, extra: &str) -> Vec<u8> {
        let objects = [
            format!("<< /Type /Catalog /Pages 2 0 R {extra} >>"),
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
             /Resources << /Font << /F1 5 0 R >> >> >>"
                .to_string(),
            format!(
                "<< /Length {} >>\nstream\n{content}\nendstream",
                content.len()
            ),
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
                .to_string(),
        ];
        let mut pdf: Vec<u8> = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
        let mut offsets = Vec::new();
        for (i, obj) in objects.iter().enumerate() {
            offsets.push(pdf.len());
            write!(pdf, "{} 0 obj\n{obj}\nendobj\n", i + 1).unwrap();
        }
        let xref = pdf.len();
        write!(pdf, "xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).unwrap();
        for off in offsets {
            writeln!(pdf, "{off:010} 00000 n ").unwrap();
        }
        write!(
            pdf,
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .unwrap();
        pdf
    }

    #[test]
    fn plain_text_kinds_round_trip() {
        let s = "Line one\nLine two — ünïcode ✓\n";
        for kind in [
            FileKind::Txt,
            FileKind::Md,
            FileKind::Srt,
            FileKind::Json,
            FileKind::Csv,
            FileKind::Eml,
        ] {
            assert_eq!(text(kind, s.as_bytes()), s, "{kind:?}");
        }
        let csv = "name,qty\n\"Smith, J\",3\n";
        assert_eq!(text(FileKind::Csv, csv.as_bytes()), csv);
        let srt = "1\n00:00:01,000 --> 00:00:02,000\nHello\n";
        assert_eq!(text(FileKind::Srt, srt.as_bytes()), srt);
        let eml = "From: a@example.com\r\nSubject: Hi\r\n\r\nBody text\r\n";
        assert_eq!(text(FileKind::Eml, eml.as_bytes()), eml);
    }

    #[test]
    fn text_encodings() {
        // BOM stripped, invalid UTF-8 replaced.
        assert_eq!(text(FileKind::Txt, b"\xEF\xBB\xBFhi"), "hi");
        assert_eq!(text(FileKind::Txt, b"caf\xE9"), "caf\u{FFFD}");
        // UTF-16 with BOM is decoded rather than refused for its NULs.
        let le: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("héllo".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        assert_eq!(text(FileKind::Txt, &le), "héllo");
        let be: Vec<u8> = [0xFE, 0xFF]
            .into_iter()
            .chain("héllo".encode_utf16().flat_map(u16::to_be_bytes))
            .collect();
        assert_eq!(text(FileKind::Txt, &be), "héllo");
        assert_eq!(text(FileKind::Txt, b""), "");
    }

    #[test]
    fn nul_bytes_in_text_are_unreadable() {
        let err = extract(FileKind::Txt, b"abc\0\0def").unwrap_err();
        assert!(
            matches!(
                err,
                ExtractError::Unreadable {
                    kind: FileKind::Txt,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().starts_with("unreadable txt: "), "{err}");
        assert!(matches!(
            extract(FileKind::Json, b"{\0}"),
            Err(ExtractError::Unreadable { .. })
        ));
    }

    #[test]
    fn pdf_round_trip() {
        let pdf = make_pdf(&["Hello PDF world", "Second line here"]);
        let got = text(FileKind::Pdf, &pdf);
        assert!(got.contains("Hello PDF world"), "{got:?}");
        assert!(got.contains("Second line here"), "{got:?}");
        assert_eq!(word_count(&got), 6, "{got:?}");
        // Detection agrees with the bytes even under a wrong name.
        assert_eq!(FileKind::detect("upload.bin", &pdf), FileKind::Pdf);
    }

    #[test]
    fn corrupt_pdf_is_unreadable() {
        let pdf = make_pdf(&["Hello PDF world"]);
        let cases: Vec<Vec<u8>> = vec![
            pdf[..pdf.len() / 3].to_vec(),
            b"%PDF-1.4\nthis is not really a pdf\n".to_vec(),
            b"%PDF-".to_vec(),
            b"not a pdf at all".to_vec(),
            Vec::new(),
        ];
        for bytes in cases {
            match extract(FileKind::Pdf, &bytes) {
                Err(
                    e @ ExtractError::Unreadable {
                        kind: FileKind::Pdf,
                        ..
                    },
                ) => {
                    assert!(e.to_string().starts_with("unreadable pdf: "), "{e}");
                }
                other => panic!(
                    "{:?}: expected unreadable, got {other:?}",
                    String::from_utf8_lossy(&bytes)
                ),
            }
        }
    }

    #[test]
    fn unsupported_and_images() {
        for kind in [
            FileKind::Doc,
            FileKind::Ppt,
            FileKind::Pptx,
            FileKind::Xls,
            FileKind::Xlsx,
            FileKind::Mp3,
            FileKind::Mp4,
            FileKind::Other,
        ] {
            let err = extract(kind, b"whatever").unwrap_err();
            assert!(matches!(err, ExtractError::Unsupported(k) if k == kind));
        }
        assert_eq!(
            extract(FileKind::Doc, b"").unwrap_err().to_string(),
            "text extraction from .doc files is not supported"
        );
        for kind in [FileKind::Png, FileKind::Jpg, FileKind::Webp, FileKind::Gif] {
            assert_eq!(extract(kind, b"\x89PNG").unwrap(), Extracted::Image);
        }
    }

    #[test]
    fn detect_then_extract() {
        let docx = docx::tests::make_docx("<w:p><w:r><w:t>from detect</w:t></w:r></w:p>");
        let kind = FileKind::detect("no-extension", &docx);
        assert_eq!(kind, FileKind::Docx);
        assert_eq!(text(kind, &docx), "from detect");
        let kind = FileKind::detect("page.html", b"<p>a &amp; b</p>");
        assert_eq!(text(kind, b"<p>a &amp; b</p>"), "a & b");
    }

    /// Randomly damaged PDFs and DOCXs and random markup: errors are fine, panics are not.
    #[test]
    fn mutated_inputs_never_panic() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as usize
        };
        let pdf = make_pdf(&["Hello PDF world", "Second line here"]);
        let docx = docx::tests::make_docx(
            "<w:p><w:r><w:t>Hello</w:t><w:tab/><w:t>docx &amp; world</w:t></w:r></w:p>",
        );
        for (kind, good) in [(FileKind::Pdf, &pdf), (FileKind::Docx, &docx)] {
            let mut failures = 0;
            for _ in 0..400 {
                let mut b = good.clone();
                for _ in 0..rnd() % 4 + 1 {
                    let i = rnd() % b.len();
                    b[i] = rnd() as u8;
                }
                if rnd() % 3 == 0 {
                    b.truncate(rnd() % b.len());
                }
                let _ = FileKind::detect("x", &b);
                match extract(kind, &b) {
                    Ok(Extracted::Text(_)) => {}
                    Ok(Extracted::Image) => panic!("image from {kind:?}"),
                    Err(ExtractError::Unreadable { kind: k, .. }) => {
                        assert_eq!(k, kind);
                        failures += 1;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            assert!(failures > 0, "{kind:?}: no mutation was caught");
        }
        let alphabet: Vec<char> = "<>/&;#x\"' =abpw:tdivscript\u{e9}\u{2713}!-[]CDATA\n"
            .chars()
            .collect();
        for _ in 0..5000 {
            let n = rnd() % 60;
            let s: String = (0..n).map(|_| alphabet[rnd() % alphabet.len()]).collect();
            let _ = html::to_text(&s);
            let _ = docx::xml_to_text(&s);
        }
    }

    #[test]
    fn counting_words() {
        assert_eq!(word_count(""), 0);
        assert_eq!(word_count("   \n\t "), 0);
        assert_eq!(word_count("one"), 1);
        assert_eq!(word_count("  two words  "), 2);
        assert_eq!(word_count("tabs\tand\nnewlines\r\nand  spaces"), 5);
        assert_eq!(word_count("non\u{A0}breaking"), 2); // char::is_whitespace includes NBSP
    }
}
