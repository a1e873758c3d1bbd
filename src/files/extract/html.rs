//! HTML: the readable text, with scripts, styles and the head dropped, entities decoded and
//! block elements turned into line breaks.

use super::markup::{Tag, decode_entities_into, tag_end, tidy_lines};

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
pub(super) fn to_text(html: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::super::tests::text;
    use super::to_text as html_to_text;
    use crate::files::kind::FileKind;

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
}
