//! The images a page embeds to count itself: a transparent pixel and a shields-style badge.

/// A 1×1 transparent GIF.
pub(crate) const PIXEL_GIF: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// The longest badge label, in characters.
pub(crate) const MAX_LABEL_CHARS: usize = 64;

/// The badge colour of a count, and of an error.
const COUNT_COLOUR: &str = "#4c1";
const ERROR_COLOUR: &str = "#e05d44";

/// A flat shields-style badge: `label` on grey, `value` on green (red for an error), each
/// part as wide as its text plus padding.
pub(crate) fn badge(label: &str, value: &str, error: bool) -> Vec<u8> {
    let (label_width, value_width) = (text_width(label) + 10, text_width(value) + 10);
    let width = label_width + value_width;
    let (label, value) = (escape_xml(label), escape_xml(value));
    let colour = if error { ERROR_COLOUR } else { COUNT_COLOUR };
    // Text x positions in tenths of a pixel, as shields draws them (scaled by 0.1).
    let (label_x, value_x) = (label_width * 5, label_width * 10 + value_width * 5);
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" aria-label="{label}: {value}"><title>{label}: {value}</title><linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient><clipPath id="r"><rect width="{width}" height="20" rx="3" fill="#fff"/></clipPath><g clip-path="url(#r)"><rect width="{label_width}" height="20" fill="#555"/><rect x="{label_width}" width="{value_width}" height="20" fill="{colour}"/><rect width="{width}" height="20" fill="url(#s)"/></g><g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="110"><text x="{label_x}" y="150" fill="#010101" fill-opacity=".3" transform="scale(.1)">{label}</text><text x="{label_x}" y="140" transform="scale(.1)">{label}</text><text x="{value_x}" y="150" fill="#010101" fill-opacity=".3" transform="scale(.1)">{value}</text><text x="{value_x}" y="140" transform="scale(.1)">{value}</text></g></svg>"##
    )
    .into_bytes()
}

/// The width in pixels of `text` in 11px Verdana, from a coarse table of its glyphs' widths:
/// close enough that a badge fits its text without a font at hand.
pub(crate) fn text_width(text: &str) -> u32 {
    text.chars()
        .map(|c| match c {
            'i' | 'j' | 'l' | '.' | ',' | ':' | ';' | '\'' | '!' | '|' => 3,
            'f' | 'r' | 't' | 'I' | ' ' | '(' | ')' | '[' | ']' | '-' | '/' => 5,
            'm' | 'w' | 'M' | 'W' | '%' | '@' => 10,
            'A'..='Z' | '0'..='9' | '#' | '&' | '+' | '=' | '?' | '_' => 8,
            c if c.is_ascii() => 7,
            // Wider scripts (CJK and the like) take about a square each.
            _ => 11,
        })
        .sum()
}

/// `text` made safe inside XML text and attribute values.
pub(crate) fn escape_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0 at all.
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped() {
        assert_eq!(
            escape_xml(r#"<b>"Tom" & 'Jerry'</b>"#),
            "&lt;b&gt;&quot;Tom&quot; &amp; &apos;Jerry&apos;&lt;/b&gt;"
        );
        assert_eq!(escape_xml("a\u{0}b\nc"), "a b c");
        let svg = String::from_utf8(badge("<script>", "12", false)).unwrap();
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;"));
    }

    #[test]
    fn widths_fit_the_text() {
        assert_eq!(text_width(""), 0);
        assert_eq!(text_width("hits"), 7 + 3 + 5 + 7);
        assert!(text_width("1,234,567") > text_width("7"));
        assert!(text_width("WWW") > text_width("iii"));
        let svg = String::from_utf8(badge("hits", "42", false)).unwrap();
        let (label, value) = (text_width("hits") + 10, text_width("42") + 10);
        assert!(svg.starts_with(&format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="20""#,
            label + value
        )));
        assert!(svg.contains(&format!(
            r##"<rect width="{label}" height="20" fill="#555"/>"##
        )));
        assert!(svg.contains(&format!(
            r##"<rect x="{label}" width="{value}" height="20" fill="#4c1"/>"##
        )));
        assert!(svg.contains("<title>hits: 42</title>"));
        assert!(String::from_utf8(badge("hits", "error", true))
            .unwrap()
            .contains("#e05d44"));
    }

    #[test]
    fn the_pixel_is_a_gif() {
        assert!(PIXEL_GIF.starts_with(b"GIF89a"));
        assert_eq!(PIXEL_GIF.len(), 43);
        assert_eq!(PIXEL_GIF.last(), Some(&0x3b));
    }
}
