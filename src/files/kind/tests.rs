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
