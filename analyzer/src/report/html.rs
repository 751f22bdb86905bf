//! The report page: one HTML file with its CSS, its script, the chart's SVG
//! and the flame graph's data inlined, so it opens from disk with no
//! network. Every text that comes from the snapshot or the disk (file
//! names, functions, source lines, the command line) is escaped here, and
//! the embedded JSON cannot end its `<script>` element.

use super::{escape, human_bytes, script_json};
use crate::format::{average, format_size};
use std::fmt::Write as _;

const CSS: &str = include_str!("report.css");
const JS: &str = include_str!("report.js");

/// One line of a table: a group of `top`'s lineno key.
pub struct Row {
    pub size: u64,
    pub count: u64,
    /// The traces' domain: 0 the malloc heap, other a custom allocator's
    /// objects (memtrace.h).
    pub domain: u32,
    /// `file:line` (the statistic's label).
    pub location: String,
    pub function: Option<String>,
    /// The stripped source line, when linecache finds it.
    pub source: Option<String>,
}

/// One table: a view's top lines.
pub struct Table {
    /// The element id (`live`, `peak`, …).
    pub id: &'static str,
    /// Its link in the page's navigation.
    pub nav: &'static str,
    pub title: String,
    /// What size and count mean in this view.
    pub note: String,
    /// The view's total (bytes, count), what the percentages are of.
    pub total: (u64, u64),
    /// How many lines the view has in all (the table may show fewer).
    pub groups: usize,
    pub rows: Vec<Row>,
    /// Some group is a custom allocator's objects: the table has a domain
    /// column.
    pub domains: bool,
    /// Why the view is not there (a file before format 1.2).
    pub missing: Option<String>,
}

/// Everything the page shows.
pub struct Page {
    pub title: String,
    pub subtitle: String,
    /// `memtrace summary`'s text, line by line.
    pub summary: Vec<String>,
    /// The chart's SVG, or why there is none.
    pub chart: Result<String, String>,
    /// The flame graph's JSON (`{"frames": …, "views": …}`).
    pub flame_json: String,
    pub tables: Vec<Table>,
    /// Notes under the page's title (sampling, domains, filters).
    pub notes: Vec<String>,
}

/// The summary's text as table rows: `Label:   value` lines become two
/// cells, indented lines rows under the one before; the top lists are left
/// to the report's own tables.
fn summary_html(lines: &[String]) -> String {
    let mut s = String::from("<table class=\"summary\">\n");
    let mut in_top = false;
    for (i, line) in lines.iter().enumerate() {
        if i == 0 {
            continue; // the page's title says it
        }
        let indented = line.starts_with("  ");
        if line.starts_with("Top ") {
            in_top = true;
            continue;
        }
        if in_top && indented {
            continue;
        }
        in_top = false;
        let class = if indented { " class=\"sub\"" } else { "" };
        match line.trim_start().split_once(": ") {
            Some((label, value)) => {
                let _ = writeln!(
                    s,
                    "<tr{class}><th>{}</th><td>{}</td></tr>",
                    escape(label.trim()),
                    escape(value.trim())
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "<tr{class}><td colspan=\"2\" class=\"aside\">{}</td></tr>",
                    escape(line.trim())
                );
            }
        }
    }
    s.push_str("</table>\n");
    s
}

fn table_html(t: &Table) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<section id=\"{}\" class=\"card\"><h2>{}</h2>",
        t.id,
        escape(&t.title)
    );
    if let Some(m) = &t.missing {
        let _ = writeln!(s, "<p class=\"missing\">{}</p></section>", escape(m));
        return s;
    }
    let shown = t.rows.len();
    let _ = writeln!(
        s,
        "<p class=\"note\">{} In all: {}, count {}, in {} line{}{}.</p>",
        escape(&t.note),
        escape(&format_size(t.total.0 as f64, false)),
        t.total.1,
        t.groups,
        if t.groups == 1 { "" } else { "s" },
        if shown < t.groups {
            format!(", the biggest {shown} shown")
        } else {
            String::new()
        }
    );
    if t.rows.is_empty() {
        s.push_str("<p class=\"missing\">(none)</p></section>\n");
        return s;
    }
    s.push_str(
        "<table class=\"top\"><thead><tr><th>#</th><th class=\"num\">size</th><th class=\"num\">%</th>\
         <th class=\"num\">count</th><th class=\"num\">average</th>",
    );
    if t.domains {
        s.push_str("<th class=\"num\">domain</th>");
    }
    s.push_str("<th>line</th></tr></thead><tbody>\n");
    for (i, r) in t.rows.iter().enumerate() {
        let pct = if t.total.0 > 0 {
            r.size as f64 * 100.0 / t.total.0 as f64
        } else {
            0.0
        };
        let avg = if r.count > 0 {
            format_size(average(r.size, r.count), false)
        } else {
            String::new()
        };
        let func = r
            .function
            .as_deref()
            .map(|f| format!("<span class=\"func\">{}</span>", escape(f)))
            .unwrap_or_default();
        let src = r
            .source
            .as_deref()
            .map(|l| format!("<code class=\"src\">{}</code>", escape(l)))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "<tr><td class=\"rank\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num pct\"><span class=\"bar\" style=\"width:{:.1}%\"></span><span>{:.1}</span></td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td>{}\
             <td class=\"where\"><span class=\"loc\">{}</span>{func}{src}</td></tr>",
            i + 1,
            escape(&format_size(r.size as f64, false)),
            pct.clamp(0.0, 100.0),
            pct,
            r.count,
            escape(&avg),
            domain_cell(t.domains, r.domain),
            escape(&r.location),
        );
    }
    s.push_str("</tbody></table></section>\n");
    s
}

/// A row's domain cell, in a table that has the column: empty for the
/// heap's groups, so the custom allocators' stand out.
fn domain_cell(column: bool, domain: u32) -> String {
    match (column, domain) {
        (false, _) => String::new(),
        (true, 0) => "<td class=\"num domain\"></td>".to_string(),
        (true, d) => format!("<td class=\"num domain\">{d}</td>"),
    }
}

/// The whole page.
pub fn render(p: &Page) -> String {
    let mut s = String::with_capacity(p.flame_json.len() + 64 * 1024);
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n\
         <title>{}</title>\n<style>\n{CSS}</style></head>\n<body>\n",
        escape(&p.title)
    );
    let _ = write!(
        s,
        "<header><h1>{}</h1><p class=\"sub\">{}</p>{}\
         <nav><a href=\"#summary\">Summary</a><a href=\"#memory\">Memory over time</a>\
         <a href=\"#flame\">Flame graph</a>",
        escape(&p.title),
        escape(&p.subtitle),
        p.notes
            .iter()
            .map(|n| format!("<p class=\"warn\">{}</p>", escape(n)))
            .collect::<String>()
    );
    for t in &p.tables {
        let _ = write!(s, "<a href=\"#{}\">{}</a>", t.id, escape(t.nav));
    }
    s.push_str("</nav></header>\n<main>\n");
    let _ = writeln!(
        s,
        "<section id=\"summary\" class=\"card\"><h2>Summary</h2>{}</section>",
        summary_html(&p.summary)
    );
    s.push_str("<section id=\"memory\" class=\"card\"><h2>Memory over time</h2>\n");
    match &p.chart {
        Ok(svg) => {
            s.push_str("<div class=\"chart\">");
            s.push_str(svg);
            s.push_str("</div>\n");
        }
        Err(why) => {
            let _ = writeln!(s, "<p class=\"missing\">{}</p>", escape(why));
        }
    }
    s.push_str("</section>\n");
    s.push_str(
        "<section id=\"flame\" class=\"card\"><h2>Flame graph</h2>\n\
         <p class=\"note\">Each box is a frame; its width is the bytes allocated under it, callers \
         above callees (the allocating line at the bottom of each tower). Click a box to zoom in, \
         the top box to zoom out; type in the search box to highlight the frames whose function or \
         file contains the text.</p>\n\
         <div id=\"flamegraph\"><noscript>The flame graph needs JavaScript.</noscript></div>\n</section>\n",
    );
    for t in &p.tables {
        s.push_str(&table_html(t));
    }
    let _ = write!(
        s,
        "</main>\n<footer>Written by memtrace {} — one file, nothing loaded from the network.</footer>\n\
         <script type=\"application/json\" id=\"fg-data\">{}</script>\n<script>\n{JS}</script>\n</body></html>\n",
        env!("CARGO_PKG_VERSION"),
        script_json(&p.flame_json)
    );
    s
}

/// `1.5 MiB` for the page's notes.
pub fn bytes(v: u64) -> String {
    human_bytes(v as f64, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_rows() {
        let lines: Vec<String> = [
            "a.snap: exit snapshot of pid 1: ./x",
            "Run time:               2.500 s (from the start)",
            "RSS now:                10.0 MiB, of which",
            "  traced memory:                        3064 B",
            "  (glibc's heap <note>)",
            "Top 3 lines at the peak:",
            "  /src/prog.c:3: size=3072 KiB, count=3, average=1024 KiB",
            "Allocator:              /lib/<x>.so, not glibc",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let h = summary_html(&lines);
        assert!(h.contains("<tr><th>Run time</th><td>2.500 s (from the start)</td></tr>"));
        assert!(h.contains("<tr class=\"sub\"><th>traced memory</th><td>3064 B</td></tr>"));
        assert!(h.contains("(glibc&#39;s heap &lt;note&gt;)"));
        assert!(!h.contains("prog.c"));
        assert!(h.contains("/lib/&lt;x&gt;.so"));
    }
}
