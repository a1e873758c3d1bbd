//! Text from uploaded documents.
//!
//! Plain-text kinds are returned as they are (lossy UTF-8, UTF-16 with a BOM is decoded),
//! HTML is reduced to its readable text, PDF goes through `pdf-extract` (guarded by
//! `catch_unwind`, since that crate can panic on odd input), DOCX is read from
//! `word/document.xml` with a small hand-written scanner. Images need no text. Other
//! office and media formats are refused with a clear error.
//!
//! Extraction is CPU-bound and synchronous: call it from `spawn_blocking` on a server.

use std::io::{Cursor, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::kind::{FileKind, find};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Extracted {
    Text(String),
    /// Images need no text; the caller passes the bytes to the model as they are.
    Image,
}

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("text extraction from .{0} files is not supported")]
    Unsupported(FileKind),
    #[error("unreadable {kind}: {reason}")]
    Unreadable { kind: FileKind, reason: String },
}

/// Largest `word/document.xml` we inflate (guards against zip bombs).
const MAX_DOCX_XML: u64 = 64 * 1024 * 1024;

pub fn extract(kind: FileKind, bytes: &[u8]) -> Result<Extracted, ExtractError> {
    match kind {
        FileKind::Txt
        | FileKind::Md
        | FileKind::Srt
        | FileKind::Json
        | FileKind::Csv
        | FileKind::Eml => decode_text(kind, bytes).map(Extracted::Text),
        FileKind::Html => decode_text(kind, bytes).map(|s| Extracted::Text(html_to_text(&s))),
        FileKind::Pdf => pdf_text(bytes).map(Extracted::Text),
        FileKind::Docx => docx_text(bytes).map(Extracted::Text),
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
pub fn word_count(text: &str) -> usize {
    text.split_whitespace().count()
}

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
        Ok(Err(e)) => Err(unreadable(FileKind::Pdf, e.to_string())),
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

// ---------------------------------------------------------------------------------------------
// DOCX

fn docx_text(bytes: &[u8]) -> Result<String, ExtractError> {
    let kind = FileKind::Docx;
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| unreadable(kind, format!("not a valid zip archive ({e})")))?;
    let entry = archive
        .by_name("word/document.xml")
        .map_err(|e| unreadable(kind, format!("no word/document.xml ({e})")))?;
    let mut xml = Vec::new();
    entry
        .take(MAX_DOCX_XML + 1)
        .read_to_end(&mut xml)
        .map_err(|e| unreadable(kind, format!("cannot inflate word/document.xml ({e})")))?;
    if xml.len() as u64 > MAX_DOCX_XML {
        return Err(unreadable(kind, "word/document.xml is larger than 64 MiB"));
    }
    let xml = String::from_utf8_lossy(&xml);
    if !xml.contains("<w:body") && !xml.contains(":body") {
        return Err(unreadable(kind, "word/document.xml has no document body"));
    }
    Ok(docx_xml_to_text(&xml))
}

/// Paragraphs (`<w:p>`) become lines, `<w:t>` carries the text, `<w:tab/>` is a tab,
/// `<w:br/>`/`<w:cr/>` a line break. Tab stops (`<w:tabs>`) and `<mc:Fallback>`
/// duplicates are skipped; deleted text (`<w:delText>`) and field codes are never read.
fn docx_xml_to_text(xml: &str) -> String {
    let mut out = String::with_capacity(xml.len() / 4);
    let mut in_text = false;
    let mut tabs_depth = 0usize;
    let mut fallback_depth = 0usize;
    let mut pos = 0;
    while pos < xml.len() {
        let rest = &xml[pos..];
        if !rest.starts_with('<') {
            let end = rest.find('<').map_or(xml.len(), |i| pos + i);
            if in_text && fallback_depth == 0 {
                decode_entities_into(&xml[pos..end], &mut out);
            }
            pos = end;
            continue;
        }
        if let Some(body) = rest.strip_prefix("<![CDATA[") {
            let len = body.find("]]>").unwrap_or(body.len());
            if in_text && fallback_depth == 0 {
                out.push_str(&body[..len]);
            }
            pos += "<![CDATA[".len() + len + 3;
            continue;
        }
        if rest.starts_with("<!--") {
            pos = rest.find("-->").map_or(xml.len(), |i| pos + i + 3);
            continue;
        }
        let Some(end) = tag_end(xml, pos) else { break };
        let tag = Tag::parse(&xml[pos + 1..end]);
        pos = end + 1;
        if tag.name == "mc:Fallback" {
            if tag.closing {
                fallback_depth = fallback_depth.saturating_sub(1);
            } else if !tag.self_closing {
                fallback_depth += 1;
            }
            continue;
        }
        if fallback_depth > 0 {
            continue;
        }
        match (tag.name, tag.closing) {
            ("w:t", false) => in_text = !tag.self_closing,
            ("w:t", true) => in_text = false,
            ("w:tabs", false) if !tag.self_closing => tabs_depth += 1,
            ("w:tabs", true) => tabs_depth = tabs_depth.saturating_sub(1),
            ("w:tab", false) if tabs_depth == 0 => out.push('\t'),
            ("w:br" | "w:cr", false) => out.push('\n'),
            ("w:noBreakHyphen", false) => out.push('-'),
            ("w:p", true) => out.push('\n'),
            ("w:p", false) if tag.self_closing => out.push('\n'),
            _ => {}
        }
    }
    let mut text: String = out
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n");
    text.truncate(text.trim_end().len());
    text
}

// ---------------------------------------------------------------------------------------------
// HTML

/// Elements whose start and end put a blank line around them (they have margins in a browser).
const PARAGRAPH_TAGS: &[&str] = &[
    "p",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "pre",
    "ul",
    "ol",
    "dl",
    "table",
    "hr",
    "figure",
];

/// Elements whose start and end end the current line (`<br>` always adds a line break).
const BLOCK_TAGS: &[&str] = &[
    "address",
    "article",
    "aside",
    "body",
    "caption",
    "dd",
    "details",
    "div",
    "dt",
    "fieldset",
    "figcaption",
    "footer",
    "form",
    "header",
    "html",
    "li",
    "main",
    "nav",
    "section",
    "summary",
    "tbody",
    "tfoot",
    "thead",
    "tr",
];

/// Elements whose whole content is dropped.
const SKIP_TAGS: &[&str] = &[
    "script", "style", "head", "noscript", "template", "svg", "title",
];

/// Readable text of an HTML document: tags dropped, `<script>`/`<style>`/`<head>` contents
/// dropped, entities decoded, block elements on their own lines, whitespace collapsed as a
/// browser would (except inside `<pre>`), runs of blank lines collapsed to one.
pub fn html_to_text(html: &str) -> String {
    let mut out = HtmlOut::default();
    let lower = html.to_ascii_lowercase(); // same byte offsets as `html` (ASCII-only change)
    let mut pre_depth = 0usize;
    let mut pos = 0;
    while pos < html.len() {
        let rest = &html[pos..];
        if !rest.starts_with('<') {
            let end = rest.find('<').map_or(html.len(), |i| pos + i);
            let mut decoded = String::new();
            decode_entities_into(&html[pos..end], &mut decoded);
            out.text(&decoded, pre_depth > 0);
            pos = end;
            continue;
        }
        if rest.starts_with("<!--") {
            pos = rest.find("-->").map_or(html.len(), |i| pos + i + 3);
            continue;
        }
        let next = rest.as_bytes().get(1).copied().unwrap_or(b' ');
        if next == b'!' || next == b'?' {
            // doctype, CDATA, processing instruction
            pos = rest.find('>').map_or(html.len(), |i| pos + i + 1);
            continue;
        }
        if !(next.is_ascii_alphabetic() || next == b'/') {
            out.text("<", pre_depth > 0); // a lone '<' in text
            pos += 1;
            continue;
        }
        let Some(end) = tag_end(html, pos) else { break };
        let lower_tag = &lower[pos + 1..end];
        let tag = Tag::parse(lower_tag);
        pos = end + 1;

        if !tag.closing && !tag.self_closing && SKIP_TAGS.contains(&tag.name) {
            pos = skip_element(&lower, pos, tag.name);
            continue;
        }
        if tag.name == "pre" {
            if tag.closing {
                pre_depth = pre_depth.saturating_sub(1);
            } else if !tag.self_closing {
                pre_depth += 1;
            }
        }
        if tag.name == "br" {
            out.line_break();
        } else if PARAGRAPH_TAGS.contains(&tag.name) {
            out.blank_line();
        } else if BLOCK_TAGS.contains(&tag.name) {
            out.end_line();
        } else if matches!(tag.name, "td" | "th") && !tag.closing {
            out.cell();
        }
    }
    out.finish()
}

/// Position just after `</name ...>` (searching the lower-cased document), or where the
/// element's content sensibly ends when the close tag is missing.
fn skip_element(lower: &str, from: usize, name: &str) -> usize {
    let close = format!("</{name}");
    let mut search = from;
    while let Some(i) = lower[search..].find(&close) {
        let at = search + i;
        let after = lower
            .as_bytes()
            .get(at + close.len())
            .copied()
            .unwrap_or(b'>');
        if after == b'>' || after.is_ascii_whitespace() {
            return tag_end(lower, at).map_or(lower.len(), |e| e + 1);
        }
        search = at + close.len();
    }
    if name == "head" {
        // An unclosed <head>: resume at <body> if there is one, else drop nothing.
        return lower[from..].find("<body").map_or(from, |i| from + i);
    }
    lower.len()
}

#[derive(Default)]
struct HtmlOut {
    s: String,
    /// A collapsed space is owed before the next visible text.
    space: bool,
}

impl HtmlOut {
    fn at_line_start(&self) -> bool {
        self.s.is_empty() || self.s.ends_with('\n')
    }

    fn text(&mut self, t: &str, pre: bool) {
        if pre {
            self.s.push_str(t);
            self.space = false;
            return;
        }
        for c in t.chars() {
            if c.is_whitespace() && c != '\u{A0}' {
                self.space = true;
            } else {
                if self.space && !self.at_line_start() && !self.s.ends_with('\t') {
                    self.s.push(' ');
                }
                self.space = false;
                self.s.push(if c == '\u{A0}' { ' ' } else { c });
            }
        }
    }

    fn line_break(&mut self) {
        self.space = false;
        self.s.push('\n');
    }

    fn end_line(&mut self) {
        self.space = false;
        if !self.at_line_start() {
            self.s.push('\n');
        }
    }

    fn blank_line(&mut self) {
        self.end_line();
        if !self.s.is_empty() && !self.s.ends_with("\n\n") {
            self.s.push('\n');
        }
    }

    fn cell(&mut self) {
        self.space = false;
        if !self.at_line_start() {
            self.s.push('\t');
        }
    }

    fn finish(self) -> String {
        tidy_lines(&self.s)
    }
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

/// Trailing whitespace off every line, runs of blank lines down to one, no blank lines
/// at the start or end.
fn tidy_lines(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank_run = 0;
    for line in s.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
            if blank_run > 0 {
                out.push('\n');
            }
        }
        blank_run = 0;
        out.push_str(line);
    }
    out
}

struct Tag<'a> {
    name: &'a str,
    closing: bool,
    self_closing: bool,
}

impl<'a> Tag<'a> {
    /// `inner` is what stands between `<` and `>`.
    fn parse(inner: &'a str) -> Tag<'a> {
        let closing = inner.starts_with('/');
        let self_closing = inner.ends_with('/');
        let body = inner.trim_start_matches('/');
        let name_end = body
            .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
            .unwrap_or(body.len());
        Tag {
            name: &body[..name_end],
            closing,
            self_closing,
        }
    }
}

/// Index of the `>` closing the tag that starts at `start` (a `<`), skipping quoted
/// attribute values.
fn tag_end(s: &str, start: usize) -> Option<usize> {
    let mut quote: Option<u8> = None;
    for (i, &b) in s.as_bytes()[start + 1..].iter().enumerate() {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'>' => return Some(start + 1 + i),
            None => {}
        }
    }
    None
}

/// Decode XML/HTML character references: the XML five, common HTML named entities,
/// `&#NNN;` and `&#xHH;`. Anything unrecognised is kept as written.
fn decode_entities_into(s: &str, out: &mut String) {
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let semi = rest.as_bytes()[1..]
            .iter()
            .take(32)
            .position(|&b| b == b';')
            .map(|i| i + 1);
        let decoded = semi.and_then(|semi| decode_entity(&rest[1..semi]).map(|d| (d, semi)));
        match decoded {
            Some((d, semi)) => {
                out.push_str(&d);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
}

fn decode_entity(name: &str) -> Option<std::borrow::Cow<'static, str>> {
    use std::borrow::Cow;
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse::<u32>().ok()?,
        };
        let c = match code {
            0 => '\u{FFFD}',
            c => char::from_u32(c).unwrap_or('\u{FFFD}'),
        };
        return Some(Cow::Owned(c.to_string()));
    }
    let s = match name {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        "nbsp" => "\u{A0}",
        "ensp" | "emsp" | "thinsp" => " ",
        "shy" | "zwnj" | "zwj" => "",
        "copy" => "©",
        "reg" => "®",
        "trade" => "™",
        "hellip" => "…",
        "mdash" => "—",
        "ndash" => "–",
        "minus" => "−",
        "lsquo" => "‘",
        "rsquo" => "’",
        "sbquo" => "‚",
        "ldquo" => "“",
        "rdquo" => "”",
        "bdquo" => "„",
        "laquo" => "«",
        "raquo" => "»",
        "bull" => "•",
        "middot" => "·",
        "deg" => "°",
        "plusmn" => "±",
        "times" => "×",
        "divide" => "÷",
        "para" => "¶",
        "sect" => "§",
        "euro" => "€",
        "pound" => "£",
        "yen" => "¥",
        "cent" => "¢",
        "larr" => "←",
        "rarr" => "→",
        "uarr" => "↑",
        "darr" => "↓",
        "frac12" => "½",
        "frac14" => "¼",
        "frac34" => "¾",
        _ => return None,
    };
    Some(Cow::Borrowed(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::kind::tests::make_zip;
    use std::io::Write;

    fn text(kind: FileKind, bytes: &[u8]) -> String {
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

    const CONTENT_TYPES: &[u8] = br#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#;

    fn make_docx(body: &str) -> Vec<u8> {
        let xml = format!(
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006"><w:body>{body}<w:sectPr/></w:body></w:document>"#
        );
        make_zip(&[
            ("[Content_Types].xml", CONTENT_TYPES),
            ("word/document.xml", xml.as_bytes()),
        ])
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
    fn html_structure_and_entities() {
        let html = r#"<!DOCTYPE html>
<html><head><title>Page title</title><meta charset="utf-8">
<style>body { color: red; }</style></head>
<body>
<!-- a comment -->
<h1>Main&nbsp;heading</h1>
<p>Fish &amp; chips &lt;cheap&gt; &quot;tasty&quot; &#39;yes&#39; &#233;t&#xE9; &copy;</p>
<script type="text/javascript">var x = "<p>not text</p>"; if (a < b) {}</script>
<div>first<br>second<br/>third</div>
<ul><li>one</li><li>two</li></ul>



<p>spaced     out
   words</p>
<table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>
<p>x < y and <b>bold</b> <a href="/q?a=1&amp;b=2" title="a > b">link</a> &unknown; AT&T</p>
<pre>  keep
    this</pre>
</body></html>"#;
        let got = html_to_text(html);
        let want = "Main heading\n\n\
                    Fish & chips <cheap> \"tasty\" 'yes' été ©\n\n\
                    first\nsecond\nthird\n\n\
                    one\ntwo\n\n\
                    spaced out words\n\n\
                    a\tb\nc\td\n\n\
                    x < y and bold link &unknown; AT&T\n\n  keep\n    this";
        assert_eq!(got, want, "\n--- got ---\n{got}\n---");
        assert!(!got.contains("not text") && !got.contains("color") && !got.contains("Page title"));
        assert_eq!(text(FileKind::Html, html.as_bytes()), want);
    }

    #[test]
    fn html_edge_cases() {
        assert_eq!(html_to_text("plain words"), "plain words");
        assert_eq!(html_to_text("<SCRIPT>evil()</SCRIPT>ok"), "ok");
        assert_eq!(html_to_text("<style>a{}</style ><P>x</P>"), "x");
        assert_eq!(html_to_text("a<script>never closed"), "a");
        assert_eq!(
            html_to_text("<head><title>t</title><body>body text"),
            "body text"
        );
        assert_eq!(
            html_to_text("<head><meta charset=utf-8>no close no body"),
            "no close no body"
        );
        assert_eq!(html_to_text("<p>unterminated <b"), "unterminated");
        assert_eq!(
            html_to_text("&#0; &#x110000; &#xZZ;"),
            "\u{FFFD} \u{FFFD} &#xZZ;"
        );
        assert_eq!(html_to_text("<h3>T</h3><h6>U</h6>"), "T\n\nU");
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
    fn docx_round_trip() {
        let body = r#"<w:p><w:pPr><w:tabs><w:tab w:val="left" w:pos="720"/></w:tabs></w:pPr><w:r><w:t>Hello</w:t></w:r><w:r><w:t xml:space="preserve"> docx </w:t></w:r><w:proofErr w:type="spellStart"/><w:r><w:t>world</w:t></w:r></w:p>
<w:p><w:r><w:t>Tom &amp; Jerry &lt;3 &quot;q&quot;</w:t><w:tab/><w:t>after tab</w:t><w:br/><w:t>after break</w:t></w:r></w:p>
<w:p/>
<w:p><w:r><w:delText>deleted</w:delText><w:instrText> PAGE </w:instrText><w:t>kept</w:t></w:r></w:p>
<w:p><mc:AlternateContent><mc:Choice Requires="wps"><w:r><w:t>box text</w:t></w:r></mc:Choice><mc:Fallback><w:r><w:t>box text</w:t></w:r></mc:Fallback></mc:AlternateContent></w:p>
<w:tbl><w:tr><w:tc><w:p><w:r><w:t>cell</w:t></w:r></w:p></w:tc></w:tr></w:tbl>"#;
        let got = text(FileKind::Docx, &make_docx(body));
        let want = "Hello docx world\nTom & Jerry <3 \"q\"\tafter tab\nafter break\n\nkept\nbox text\ncell";
        assert_eq!(got, want);
    }

    #[test]
    fn docx_stored_entries_work_too() {
        let xml = r#"<w:document xmlns:w="x"><w:body><w:p><w:r><w:t>stored</w:t></w:r></w:p></w:body></w:document>"#;
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        w.start_file("word/document.xml", opts).unwrap();
        w.write_all(xml.as_bytes()).unwrap();
        let bytes = w.finish().unwrap().into_inner();
        assert_eq!(text(FileKind::Docx, &bytes), "stored");
    }

    #[test]
    fn corrupt_docx_is_unreadable() {
        let good = make_docx(
            "<w:p><w:r><w:t>Some text that is long enough to deflate nicely nicely nicely</w:t></w:r></w:p>",
        );
        let mut flipped = good.clone();
        // Damage the deflated payload of word/document.xml (just after its local header).
        let at = find(&flipped, b"word/document.xml").unwrap() + 17;
        for b in &mut flipped[at..at + 40] {
            *b ^= 0x5A;
        }
        let cases: Vec<Vec<u8>> = vec![
            good[..good.len() / 2].to_vec(),
            b"PK\x03\x04garbage".to_vec(),
            b"not a zip".to_vec(),
            make_zip(&[("readme.txt", b"hi")]),
            make_zip(&[("word/document.xml", b"<html>not wordml</html>")]),
            flipped,
        ];
        for bytes in cases {
            match extract(FileKind::Docx, &bytes) {
                Err(
                    e @ ExtractError::Unreadable {
                        kind: FileKind::Docx,
                        ..
                    },
                ) => {
                    assert!(e.to_string().starts_with("unreadable docx: "), "{e}");
                }
                other => panic!("expected unreadable, got {other:?}"),
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
        let docx = make_docx("<w:p><w:r><w:t>from detect</w:t></w:r></w:p>");
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
        let docx =
            make_docx("<w:p><w:r><w:t>Hello</w:t><w:tab/><w:t>docx &amp; world</w:t></w:r></w:p>");
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
            let _ = html_to_text(&s);
            let _ = docx_xml_to_text(&s);
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
