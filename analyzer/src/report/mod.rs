//! Pictures of a snapshot for a person to look at: the memory-over-time
//! chart (`memtrace plot`, an SVG) and the one-file HTML report
//! (`memtrace report`: summary, chart, flame graph, tables).
//!
//! Everything is written by hand as text: the chart is a few dozen SVG
//! elements (lines, a path, labels) whose layout — human byte units, nice
//! ticks, labelled marks — is the point, and the plotting crates (plotters
//! and the like) would bring font rasterizers and backends for a page that
//! needs none of them; the flame graph is a small vanilla-JS renderer over
//! a JSON tree embedded in the page, so the report opens from disk with no
//! network and no build step.

pub mod chart;
pub mod flame;
pub mod html;

/// Escapes text for HTML/SVG element content and attribute values (double-
/// or single-quoted).
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            // Control characters are not allowed in XML text.
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => o.push('\u{fffd}'),
            c => o.push(c),
        }
    }
    o
}

/// JSON text made safe inside an HTML `<script>` element: `<`, `>` and `&`
/// (which JSON has only inside strings) become `\u003c`… escapes, so no
/// `</script>` or `<!--` can end the element early.
pub fn script_json(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// Bytes in binary units with at most `digits` decimals, trailing zeros
/// dropped: `0 B`, `512 KiB`, `1.5 MiB`.
pub fn human_bytes(v: f64, digits: usize) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut x = v;
    let mut i = 0;
    while x.abs() >= 1024.0 && i < UNITS.len() - 1 {
        x /= 1024.0;
        i += 1;
    }
    format!(
        "{} {}",
        trim_number(x, if i == 0 { 0 } else { digits }),
        UNITS[i]
    )
}

/// `x` with at most `digits` decimals, trailing zeros and point dropped.
pub fn trim_number(x: f64, digits: usize) -> String {
    let s = format!("{x:.digits$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            escape("a<b>&\"c'\u{1}"),
            "a&lt;b&gt;&amp;&quot;c&#39;\u{fffd}"
        );
        assert_eq!(
            script_json(r#"{"a":"</script><!--&"}"#),
            r#"{"a":"\u003c/script\u003e\u003c!--\u0026"}"#
        );
    }

    #[test]
    fn bytes() {
        assert_eq!(human_bytes(0.0, 1), "0 B");
        assert_eq!(human_bytes(1023.0, 1), "1023 B");
        assert_eq!(human_bytes(1536.0, 1), "1.5 KiB");
        assert_eq!(human_bytes(3.0 * 1048576.0, 1), "3 MiB");
        assert_eq!(trim_number(2.50, 2), "2.5");
    }
}
