//! The file name of an upload, from its `Content-Disposition` header, in the three forms
//! clients send: `filename=a.pdf`, `filename="a b.pdf"` and RFC 5987's
//! `filename*=utf-8''a%20b.pdf` (which wins when both are present).

/// The file name carried by `header`, reduced to its last path component; `None` when the
/// header names no usable file name.
pub(crate) fn file_name(header: &str) -> Option<String> {
    let mut plain = None;
    let mut extended = None;
    for (key, value) in params(header) {
        match key.to_ascii_lowercase().as_str() {
            "filename" => plain = Some(value),
            "filename*" => extended = decode_extended(&value),
            _ => {}
        }
    }
    let name = extended.or(plain)?;
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default().trim();
    let clean: String = base.chars().filter(|c| !c.is_control()).collect();
    (!clean.is_empty() && clean != "." && clean != "..").then_some(clean)
}

/// The `key=value` parameters after the disposition type, with quoted values unquoted.
fn params(header: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = match header.find(';') {
        Some(at) => &header[at + 1..],
        None => return out,
    };
    loop {
        rest = rest.trim_start_matches([' ', '\t', ';']);
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq].trim().to_owned();
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut text = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            text.push(escaped);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => text.push(c),
                }
            }
            value = text;
            rest = &quoted[end.min(quoted.len())..];
        } else {
            let end = rest.find(';').unwrap_or(rest.len());
            value = rest[..end].trim().to_owned();
            rest = &rest[end..];
        }
        out.push((key, value));
    }
    out
}

/// `charset'language'percent-encoded` (RFC 5987); UTF-8 and ISO-8859-1 charsets.
fn decode_extended(value: &str) -> Option<String> {
    let mut parts = value.splitn(3, '\'');
    let charset = parts.next()?.to_ascii_lowercase();
    let _language = parts.next()?;
    let encoded = parts.next()?;
    let bytes = percent_decode(encoded)?;
    match charset.as_str() {
        "utf-8" | "" => String::from_utf8(bytes).ok(),
        "iso-8859-1" => Some(bytes.into_iter().map(char::from).collect()),
        _ => None,
    }
}

fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::file_name;

    #[test]
    fn the_three_forms_clients_send() {
        assert_eq!(
            file_name("attachment; filename=a.pdf").as_deref(),
            Some("a.pdf")
        );
        assert_eq!(
            file_name("attachment; filename=\"a b.pdf\"").as_deref(),
            Some("a b.pdf")
        );
        assert_eq!(
            file_name("attachment; filename*=utf-8''a%20b.pdf").as_deref(),
            Some("a b.pdf")
        );
        assert_eq!(
            file_name("attachment; filename*=UTF-8''%C3%A9t%C3%A9.txt").as_deref(),
            Some("été.txt")
        );
    }

    #[test]
    fn the_extended_form_wins_and_paths_are_dropped() {
        assert_eq!(
            file_name("attachment; filename=\"fallback.pdf\"; filename*=utf-8''real.pdf")
                .as_deref(),
            Some("real.pdf")
        );
        assert_eq!(
            file_name("attachment; filename=\"../../etc/passwd\"").as_deref(),
            Some("passwd")
        );
        assert_eq!(
            file_name("attachment; filename=\"C:\\\\docs\\\\q.txt\"").as_deref(),
            Some("q.txt")
        );
        assert_eq!(
            file_name("attachment; filename=\"say \\\"hi\\\".txt\"").as_deref(),
            Some("say \"hi\".txt")
        );
    }

    #[test]
    fn no_usable_name() {
        for header in [
            "attachment",
            "inline",
            "attachment; filename=",
            "attachment; filename=\"\"",
            "attachment; filename=..",
            "attachment; filename*=utf-8''%zz",
            "attachment; name=x.pdf",
        ] {
            assert_eq!(file_name(header), None, "{header}");
        }
    }
}
