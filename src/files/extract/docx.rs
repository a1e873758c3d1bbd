//! DOCX: the text of `word/document.xml`, read with a small scanner (paragraphs become lines).

use std::io::{Cursor, Read};

use super::markup::{Tag, decode_entities_into, tag_end};
use super::{ExtractError, unparsable, unreadable};
use crate::files::kind::FileKind;
use crate::report::Cause;

/// Largest `word/document.xml` inflated (guards against zip bombs).
const MAX_DOCX_XML: u64 = 64 * 1024 * 1024;

pub(super) fn text(bytes: &[u8]) -> Result<String, ExtractError> {
    let kind = FileKind::Docx;
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| unparsable(kind, Cause::context("not a valid zip archive", e)))?;
    let entry = archive
        .by_name("word/document.xml")
        .map_err(|e| unparsable(kind, Cause::context("no word/document.xml", e)))?;
    let mut xml = Vec::new();
    entry
        .take(MAX_DOCX_XML + 1)
        .read_to_end(&mut xml)
        .map_err(|e| unparsable(kind, Cause::context("cannot inflate word/document.xml", e)))?;
    if xml.len() as u64 > MAX_DOCX_XML {
        return Err(unreadable(kind, "word/document.xml is larger than 64 MiB"));
    }
    let xml = String::from_utf8_lossy(&xml);
    if !xml.contains("<w:body") && !xml.contains(":body") {
        return Err(unreadable(kind, "word/document.xml has no document body"));
    }
    Ok(xml_to_text(&xml))
}

/// Paragraphs (`<w:p>`) become lines, `<w:t>` carries the text, `<w:tab/>` is a tab,
/// `<w:br/>`/`<w:cr/>` a line break. Tab stops (`<w:tabs>`) and `<mc:Fallback>`
/// duplicates are skipped; deleted text (`<w:delText>`) and field codes are never read.
pub(super) fn xml_to_text(xml: &str) -> String {
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

#[cfg(test)]
pub(super) mod tests {
    use std::io::{Cursor, Write};

    use super::super::tests::text;
    use super::super::{ExtractError, extract};
    use crate::files::kind::tests::make_zip;
    use crate::files::kind::{FileKind, find};
    use crate::report::Chain;

    const CONTENT_TYPES: &[u8] = br#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#;

    /// A minimal docx whose body is `body`.
    pub(crate) fn make_docx(body: &str) -> Vec<u8> {
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
        // The zip reader's error stays the cause, shown after what was being read.
        let e = extract(FileKind::Docx, b"not a zip").unwrap_err();
        let parser = std::error::Error::source(&e).and_then(|reason| reason.source());
        assert!(
            parser.is_some_and(|p| p.is::<zip::result::ZipError>()),
            "{e:?}"
        );
        let shown = Chain(&e).to_string();
        assert!(
            shown.starts_with("unreadable docx: not a valid zip archive: "),
            "{shown}"
        );
    }
}
