//! What an uploaded file is, decided from its name and its leading bytes.
//!
//! The client's Content-Type is ignored (the Python SDK always sends `text/plain`).
//! Signatures in the bytes win where they are decisive (a PNG named `.txt` is a PNG,
//! `%PDF-` is a PDF, a zip is only a docx when it holds `word/document.xml`); the
//! extension decides between text formats, which have no signature.

use std::io::Cursor;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileKind {
    Txt,
    Md,
    Csv,
    Html,
    Pdf,
    Docx,
    Doc,
    Pptx,
    Ppt,
    Xlsx,
    Xls,
    Eml,
    Srt,
    Json,
    Png,
    Jpg,
    Webp,
    Gif,
    Mp3,
    Mp4,
    Other,
}

impl FileKind {
    /// Decide from the name's extension and the leading bytes.
    ///
    /// * A decisive signature wins over the extension (PNG/JPEG/GIF/WebP, `%PDF-`,
    ///   OOXML zips by their central directory, OLE2 for doc/xls/ppt, ID3/MPEG audio, `ftyp` MP4).
    /// * Text formats (txt, md, csv, html, eml, srt, json) are decided by the extension.
    /// * A document/audio/video extension whose bytes carry no signature keeps its kind
    ///   (so a truncated pdf surfaces as "unreadable pdf" at extraction) unless the bytes
    ///   look like plain text, then it is Txt. A zip that parses but lacks the OOXML part is Other.
    /// * An image extension needs the image signature (images skip extraction, so a
    ///   mislabelled one must not pass as an image).
    /// * Unknown or missing extension: text-looking bytes (valid UTF-8, no NUL) are Txt, else Other.
    pub(crate) fn detect(name: &str, bytes: &[u8]) -> FileKind {
        let by_ext = extension_of(name).and_then(FileKind::from_extension);

        if let Some(kind) = sniff(by_ext, bytes) {
            return kind;
        }
        match by_ext {
            Some(k) if k.is_text() => k,
            // A zip that parsed fine but has none of the OOXML main parts is some other zip.
            Some(FileKind::Docx | FileKind::Pptx | FileKind::Xlsx) if zip_parses(bytes) => {
                FileKind::Other
            }
            Some(_) if looks_like_text(bytes) => FileKind::Txt,
            Some(k) if k.is_image() => FileKind::Other,
            Some(k) => k,
            None if looks_like_text(bytes) => FileKind::Txt,
            None => FileKind::Other,
        }
    }

    /// Kind named by a file extension (without the dot), case-insensitive.
    pub(crate) fn from_extension(ext: &str) -> Option<FileKind> {
        let ext = ext.trim().trim_start_matches('.').to_ascii_lowercase();
        Some(match ext.as_str() {
            "txt" | "text" => FileKind::Txt,
            "md" | "markdown" => FileKind::Md,
            "csv" => FileKind::Csv,
            "html" | "htm" => FileKind::Html,
            "pdf" => FileKind::Pdf,
            "docx" => FileKind::Docx,
            "doc" => FileKind::Doc,
            "pptx" => FileKind::Pptx,
            "ppt" => FileKind::Ppt,
            "xlsx" => FileKind::Xlsx,
            "xls" => FileKind::Xls,
            "eml" => FileKind::Eml,
            "srt" => FileKind::Srt,
            "json" => FileKind::Json,
            "png" => FileKind::Png,
            "jpg" | "jpeg" => FileKind::Jpg,
            "webp" => FileKind::Webp,
            "gif" => FileKind::Gif,
            "mp3" => FileKind::Mp3,
            "mp4" => FileKind::Mp4,
            _ => return None,
        })
    }

    /// Canonical extension, without the dot ("bin" for Other).
    pub(crate) fn extension(self) -> &'static str {
        match self {
            FileKind::Txt => "txt",
            FileKind::Md => "md",
            FileKind::Csv => "csv",
            FileKind::Html => "html",
            FileKind::Pdf => "pdf",
            FileKind::Docx => "docx",
            FileKind::Doc => "doc",
            FileKind::Pptx => "pptx",
            FileKind::Ppt => "ppt",
            FileKind::Xlsx => "xlsx",
            FileKind::Xls => "xls",
            FileKind::Eml => "eml",
            FileKind::Srt => "srt",
            FileKind::Json => "json",
            FileKind::Png => "png",
            FileKind::Jpg => "jpg",
            FileKind::Webp => "webp",
            FileKind::Gif => "gif",
            FileKind::Mp3 => "mp3",
            FileKind::Mp4 => "mp4",
            FileKind::Other => "bin",
        }
    }

    /// MIME type to serve the file with.
    pub(crate) fn mime(self) -> &'static str {
        match self {
            FileKind::Txt => "text/plain; charset=utf-8",
            FileKind::Md => "text/markdown; charset=utf-8",
            FileKind::Csv => "text/csv; charset=utf-8",
            FileKind::Html => "text/html; charset=utf-8",
            FileKind::Pdf => "application/pdf",
            FileKind::Docx => {
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            }
            FileKind::Doc => "application/msword",
            FileKind::Pptx => {
                "application/vnd.openxmlformats-officedocument.presentationml.presentation"
            }
            FileKind::Ppt => "application/vnd.ms-powerpoint",
            FileKind::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            FileKind::Xls => "application/vnd.ms-excel",
            FileKind::Eml => "message/rfc822",
            FileKind::Srt => "application/x-subrip",
            FileKind::Json => "application/json",
            FileKind::Png => "image/png",
            FileKind::Jpg => "image/jpeg",
            FileKind::Webp => "image/webp",
            FileKind::Gif => "image/gif",
            FileKind::Mp3 => "audio/mpeg",
            FileKind::Mp4 => "video/mp4",
            FileKind::Other => "application/octet-stream",
        }
    }

    pub(crate) fn is_image(self) -> bool {
        matches!(
            self,
            FileKind::Png | FileKind::Jpg | FileKind::Webp | FileKind::Gif
        )
    }

    /// Formats that are plain text on disk and are told apart only by their extension.
    pub(crate) fn is_text(self) -> bool {
        matches!(
            self,
            FileKind::Txt
                | FileKind::Md
                | FileKind::Csv
                | FileKind::Html
                | FileKind::Eml
                | FileKind::Srt
                | FileKind::Json
        )
    }
}

impl std::fmt::Display for FileKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.extension())
    }
}

/// Extension of the last path component, if it has one (".bashrc" has none).
fn extension_of(name: &str) -> Option<&str> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    match base.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && !ext.is_empty() => Some(ext),
        _ => None,
    }
}

/// Valid UTF-8 (a UTF-8 BOM is fine) with no NUL bytes. Empty counts as text.
fn looks_like_text(bytes: &[u8]) -> bool {
    !bytes.contains(&0) && std::str::from_utf8(bytes).is_ok()
}

const OLE2_MAGIC: &[u8] = &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

/// A kind the bytes prove, or None when they prove nothing.
fn sniff(by_ext: Option<FileKind>, b: &[u8]) -> Option<FileKind> {
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some(FileKind::Png);
    }
    if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some(FileKind::Jpg);
    }
    if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        return Some(FileKind::Gif);
    }
    if b.len() >= 12 && &b[0..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        return Some(FileKind::Webp);
    }
    if b.starts_with(b"%PDF-") {
        return Some(FileKind::Pdf);
    }
    // The PDF spec tolerates junk before the header; only trust that for files named .pdf.
    if by_ext == Some(FileKind::Pdf) && find(&b[..b.len().min(1024)], b"%PDF-").is_some() {
        return Some(FileKind::Pdf);
    }
    if b.starts_with(b"PK\x03\x04") || b.starts_with(b"PK\x05\x06") {
        return ooxml_kind(b);
    }
    if b.starts_with(OLE2_MAGIC) {
        return Some(ole2_kind(by_ext, b));
    }
    if b.starts_with(b"ID3") {
        return Some(FileKind::Mp3);
    }
    // MPEG audio frame sync (11 set bits), layer bits non-zero. JPEG (FF D8) was handled above.
    if b.len() >= 4 && b[0] == 0xFF && (b[1] & 0xE0) == 0xE0 && (b[1] & 0x06) != 0 {
        return Some(FileKind::Mp3);
    }
    if b.len() >= 12 && &b[4..8] == b"ftyp" {
        return Some(FileKind::Mp4);
    }
    None
}

/// Which OOXML document a zip is, from the names in its central directory.
/// A zip too broken to parse is searched for the names in its local headers instead,
/// so a truncated docx is still called a docx (and reported unreadable at extraction).
fn ooxml_kind(b: &[u8]) -> Option<FileKind> {
    const PARTS: [(&[u8], FileKind); 3] = [
        (b"word/document.xml", FileKind::Docx),
        (b"ppt/presentation.xml", FileKind::Pptx),
        (b"xl/workbook.xml", FileKind::Xlsx),
    ];
    match zip::ZipArchive::new(Cursor::new(b)) {
        Ok(archive) => {
            let names: Vec<&[u8]> = archive.file_names_raw().collect();
            PARTS
                .iter()
                .find(|(part, _)| names.iter().any(|n| n == part))
                .map(|&(_, kind)| kind)
        }
        Err(_) => PARTS
            .iter()
            .find(|(part, _)| find(b, part).is_some())
            .map(|&(_, kind)| kind),
    }
}

fn zip_parses(b: &[u8]) -> bool {
    (b.starts_with(b"PK\x03\x04") || b.starts_with(b"PK\x05\x06"))
        && zip::ZipArchive::new(Cursor::new(b)).is_ok()
}

/// Legacy Office (OLE2 compound file): the extension decides among doc/xls/ppt; without one,
/// look for the stream names (UTF-16LE in the directory entries).
fn ole2_kind(by_ext: Option<FileKind>, b: &[u8]) -> FileKind {
    if let Some(k @ (FileKind::Doc | FileKind::Xls | FileKind::Ppt)) = by_ext {
        return k;
    }
    let utf16 = |s: &str| -> Vec<u8> { s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect() };
    if find(b, &utf16("WordDocument")).is_some() {
        FileKind::Doc
    } else if find(b, &utf16("Workbook")).is_some() || find(b, &utf16("Book")).is_some() {
        FileKind::Xls
    } else if find(b, &utf16("PowerPoint Document")).is_some() {
        FileKind::Ppt
    } else {
        FileKind::Other
    }
}

/// Where `needle` first occurs in `haystack`.
pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
pub(super) mod tests;
