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
pub(super) mod tests {
    use super::*;
    use std::io::Write;

    /// A zip of these entries, deflated.
    pub(crate) fn make_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in entries {
            w.start_file(*name, opts).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const JPG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F', 0];
    const GIF: &[u8] = b"GIF89a\x01\0\x01\0\0\0\0";
    const WEBP: &[u8] = b"RIFF\x24\0\0\0WEBPVP8 ";
    const MP3: &[u8] = b"ID3\x04\0\0\0\0\0\0";
    const MP4: &[u8] = b"\0\0\0\x18ftypmp42\0\0\0\0";

    fn ole2(stream: &str) -> Vec<u8> {
        let mut v = OLE2_MAGIC.to_vec();
        v.extend_from_slice(&[0u8; 64]);
        v.extend(stream.encode_utf16().flat_map(|u| u.to_le_bytes()));
        v
    }

    #[test]
    fn extension_lookup() {
        assert_eq!(FileKind::from_extension("JPEG"), Some(FileKind::Jpg));
        assert_eq!(FileKind::from_extension("jpg"), Some(FileKind::Jpg));
        assert_eq!(FileKind::from_extension("htm"), Some(FileKind::Html));
        assert_eq!(FileKind::from_extension("Markdown"), Some(FileKind::Md));
        assert_eq!(FileKind::from_extension(".PDF"), Some(FileKind::Pdf));
        assert_eq!(FileKind::from_extension("exe"), None);
        assert_eq!(FileKind::from_extension(""), None);
        assert_eq!(FileKind::Jpg.extension(), "jpg");
        assert_eq!(FileKind::Other.extension(), "bin");
        assert_eq!(FileKind::Md.mime(), "text/markdown; charset=utf-8");
        assert_eq!(
            FileKind::Docx.mime(),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        );
        assert_eq!(FileKind::Other.mime(), "application/octet-stream");
        assert!(FileKind::Webp.is_image() && !FileKind::Pdf.is_image());
        // Every kind's canonical extension maps back to it.
        for k in ALL {
            if k != FileKind::Other {
                assert_eq!(FileKind::from_extension(k.extension()), Some(k), "{k:?}");
            }
        }
    }

    const ALL: [FileKind; 21] = [
        FileKind::Txt,
        FileKind::Md,
        FileKind::Csv,
        FileKind::Html,
        FileKind::Pdf,
        FileKind::Docx,
        FileKind::Doc,
        FileKind::Pptx,
        FileKind::Ppt,
        FileKind::Xlsx,
        FileKind::Xls,
        FileKind::Eml,
        FileKind::Srt,
        FileKind::Json,
        FileKind::Png,
        FileKind::Jpg,
        FileKind::Webp,
        FileKind::Gif,
        FileKind::Mp3,
        FileKind::Mp4,
        FileKind::Other,
    ];

    #[test]
    fn detect_text_kinds_by_name() {
        let t = b"hello, world\n";
        assert_eq!(FileKind::detect("a.txt", t), FileKind::Txt);
        assert_eq!(FileKind::detect("README.MD", t), FileKind::Md);
        assert_eq!(FileKind::detect("notes.markdown", t), FileKind::Md);
        assert_eq!(FileKind::detect("data.csv", t), FileKind::Csv);
        assert_eq!(FileKind::detect("page.htm", b"<p>x</p>"), FileKind::Html);
        assert_eq!(FileKind::detect("mail.eml", t), FileKind::Eml);
        assert_eq!(FileKind::detect("subs.srt", t), FileKind::Srt);
        assert_eq!(FileKind::detect("x.json", b"{}"), FileKind::Json);
        // Unknown or missing extension with text bytes.
        assert_eq!(FileKind::detect("script.py", t), FileKind::Txt);
        assert_eq!(FileKind::detect("noext", t), FileKind::Txt);
        assert_eq!(FileKind::detect(".bashrc", t), FileKind::Txt);
        assert_eq!(FileKind::detect("", b""), FileKind::Txt);
        // Binary garbage without a known extension.
        assert_eq!(
            FileKind::detect("blob.bin", &[0, 1, 2, 0xFF]),
            FileKind::Other
        );
        assert_eq!(FileKind::detect("blob", &[0xC3, 0x28]), FileKind::Other);
        // A text extension keeps its kind even with NULs (extraction reports it).
        assert_eq!(FileKind::detect("a.txt", b"a\0b"), FileKind::Txt);
    }

    #[test]
    fn detect_binary_kinds_by_bytes() {
        assert_eq!(FileKind::detect("image.png", PNG), FileKind::Png);
        assert_eq!(FileKind::detect("image.txt", PNG), FileKind::Png);
        assert_eq!(FileKind::detect("photo", JPG), FileKind::Jpg);
        assert_eq!(FileKind::detect("photo.png", JPG), FileKind::Jpg);
        assert_eq!(FileKind::detect("anim.gif", GIF), FileKind::Gif);
        assert_eq!(FileKind::detect("x.dat", WEBP), FileKind::Webp);
        assert_eq!(FileKind::detect("song.mp3", MP3), FileKind::Mp3);
        assert_eq!(
            FileKind::detect("song", &[0xFF, 0xFB, 0x90, 0x64, 0, 0]),
            FileKind::Mp3
        );
        assert_eq!(FileKind::detect("clip.bin", MP4), FileKind::Mp4);
        assert_eq!(
            FileKind::detect("doc.pdf", b"%PDF-1.4\n%..."),
            FileKind::Pdf
        );
        assert_eq!(
            FileKind::detect("doc.bin", b"%PDF-1.7\n\x80\x81"),
            FileKind::Pdf
        );
        assert_eq!(
            FileKind::detect("junk-first.pdf", b"\x00\x01junk%PDF-1.4\n"),
            FileKind::Pdf
        );
        assert_eq!(FileKind::detect("w.doc", &ole2("x")), FileKind::Doc);
        assert_eq!(FileKind::detect("w.xls", &ole2("x")), FileKind::Xls);
        assert_eq!(FileKind::detect("w.ppt", &ole2("x")), FileKind::Ppt);
        assert_eq!(FileKind::detect("w", &ole2("WordDocument")), FileKind::Doc);
        assert_eq!(FileKind::detect("w.bin", &ole2("Workbook")), FileKind::Xls);
        assert_eq!(
            FileKind::detect("w", &ole2("PowerPoint Document")),
            FileKind::Ppt
        );
        assert_eq!(
            FileKind::detect("mail.msg", &ole2("__substg1.0")),
            FileKind::Other
        );
    }

    #[test]
    fn detect_images_need_a_signature() {
        assert_eq!(FileKind::detect("fake.png", &[0, 1, 2, 3]), FileKind::Other);
        assert_eq!(FileKind::detect("fake.jpg", b"just text"), FileKind::Txt);
    }

    #[test]
    fn detect_ooxml_from_central_directory() {
        let docx = make_zip(&[
            ("[Content_Types].xml", b"<Types/>"),
            ("word/document.xml", b"<w:document/>"),
        ]);
        let pptx = make_zip(&[("ppt/presentation.xml", b"<p/>")]);
        let xlsx = make_zip(&[("xl/workbook.xml", b"<wb/>")]);
        let plain = make_zip(&[("readme.txt", b"hi")]);
        assert_eq!(FileKind::detect("report.docx", &docx), FileKind::Docx);
        assert_eq!(FileKind::detect("report", &docx), FileKind::Docx);
        assert_eq!(FileKind::detect("report.zip", &docx), FileKind::Docx);
        assert_eq!(FileKind::detect("upload.txt", &docx), FileKind::Docx);
        assert_eq!(FileKind::detect("deck", &pptx), FileKind::Pptx);
        assert_eq!(FileKind::detect("deck.pptx", &pptx), FileKind::Pptx);
        assert_eq!(FileKind::detect("sheet", &xlsx), FileKind::Xlsx);
        assert_eq!(FileKind::detect("misnamed.docx", &xlsx), FileKind::Xlsx);
        // A plain zip named .docx is not a docx.
        assert_eq!(FileKind::detect("fake.docx", &plain), FileKind::Other);
        assert_eq!(FileKind::detect("a.zip", &plain), FileKind::Other);
        // A truncated docx (central directory lost) is still recognised by its local header.
        let cut = &docx[..docx.len() - 30];
        assert_eq!(FileKind::detect("cut", cut), FileKind::Docx);
        // A .docx extension on non-zip binary keeps Docx so extraction can say it is unreadable.
        assert_eq!(
            FileKind::detect("broken.docx", &[0, 0xFF, 7]),
            FileKind::Docx
        );
        assert_eq!(FileKind::detect("broken.pdf", &[0, 0xFF, 7]), FileKind::Pdf);
    }
}
