//! Flame graphs: the folded text (`root;caller;allocator 1234`, one line
//! per distinct stack, root first, inline frames expanded) that flame graph
//! tools read, and the SVG inferno draws from it, the program's frames
//! coloured apart from the system's.

use super::{round, Group, Stacks};
use crate::frame::{basename, Frame, FrameTable};
use crate::util::FxHashMap as HashMap;
use std::io::Write;

/// A frame's name in a flame graph: `function (file:line)`, or for a frame
/// without line information `function (module)` (its `<…>` name when even
/// the function is unknown). `;` separates frames in the folded format, so
/// it never appears in a name.
pub fn frame_name(f: &Frame) -> String {
    let name = if f.has_line {
        match &f.function {
            Some(func) => format!("{func} ({}:{})", f.filename, f.lineno),
            None => format!("{}:{}", f.filename, f.lineno),
        }
    } else {
        match (&f.function, &f.module) {
            (Some(func), Some(m)) => format!("{func} ({})", basename(m)),
            _ => f.filename.clone(),
        }
    };
    name.replace(';', ":")
}

/// The folded lines of `groups` (stacks the filters let through), widths
/// in bytes or, with `count`, blocks; a sampled snapshot's estimates,
/// rounded per line. Sorted, one line per distinct stack.
pub fn folded(
    stacks: &Stacks,
    table: &FrameTable,
    groups: &[Group],
    sample_rate: u64,
    count: bool,
) -> Vec<(String, u64)> {
    let mut names: HashMap<u32, String> = HashMap::default();
    let mut lines: HashMap<String, f64> = HashMap::default();
    let mut by_stack: HashMap<usize, f64> = HashMap::default();
    for g in groups {
        let (b, c) = g.estimate(sample_rate);
        *by_stack.entry(g.stack).or_default() += if count { c } else { b };
    }
    for (s, w) in by_stack {
        let st = &stacks.stacks[s];
        let line = st
            .frames
            .iter()
            .rev()
            .map(|&f| {
                names
                    .entry(f)
                    .or_insert_with(|| frame_name(table.frame(f)))
                    .clone()
            })
            .collect::<Vec<_>>()
            .join(";");
        *lines.entry(line).or_default() += w;
    }
    let mut v: Vec<(String, u64)> = lines
        .into_iter()
        .map(|(l, w)| (l, round(w)))
        .filter(|(_, w)| *w > 0)
        .collect();
    v.sort();
    v
}

/// Writes the folded text.
pub fn write_folded(lines: &[(String, u64)], out: &mut dyn Write) -> std::io::Result<()> {
    for (l, w) in lines {
        writeln!(out, "{l} {w}")?;
    }
    Ok(())
}

/// What the picture says about itself.
pub struct SvgOptions {
    pub title: String,
    pub subtitle: Option<String>,
    /// Widths are blocks, not bytes.
    pub count: bool,
}

/// The program's frames: warm; the system's: cool grey-blue.
const USER_COLORS: [&str; 4] = ["#e8743b", "#f0a04b", "#e05a47", "#f2c14e"];
const SYSTEM_COLORS: [&str; 2] = ["#8fa3bf", "#a9b8cc"];

/// Draws the flame graph of the folded `lines` with inferno. `system` tells
/// which frame names are the toolchain's and the system's.
pub fn write_svg(
    lines: &[(String, u64)],
    system: &dyn Fn(&str) -> bool,
    o: &SvgOptions,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    use inferno::flamegraph::{self, color, Options};
    if lines.is_empty() {
        // inferno refuses an empty graph; nothing live (or nothing the
        // filters let through) is an answer, drawn as a titled, empty picture.
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        };
        return write!(
            out,
            "<?xml version=\"1.0\" standalone=\"no\"?>\n\
             <svg version=\"1.1\" width=\"1200\" height=\"120\" xmlns=\"http://www.w3.org/2000/svg\">\n\
             <text x=\"600\" y=\"24\" text-anchor=\"middle\" font-family=\"Verdana\" font-size=\"17\">{}</text>\n\
             <text x=\"600\" y=\"48\" text-anchor=\"middle\" font-family=\"Verdana\" font-size=\"12\">{}</text>\n\
             <text x=\"600\" y=\"84\" text-anchor=\"middle\" font-family=\"Verdana\" font-size=\"12\">no blocks to draw</text>\n\
             </svg>\n",
            esc(&o.title),
            esc(o.subtitle.as_deref().unwrap_or(""))
        );
    }
    let mut map = color::PaletteMap::default();
    let mut seen = std::collections::HashSet::new();
    for (l, _) in lines {
        for name in l.split(';') {
            if !seen.insert(name) {
                continue;
            }
            let h = name
                .bytes()
                .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
            let c = if system(name) {
                SYSTEM_COLORS[h % SYSTEM_COLORS.len()]
            } else {
                USER_COLORS[h % USER_COLORS.len()]
            };
            map.insert(name, color::parse_hex_color(c).expect("a valid colour"));
        }
    }
    let mut opt = Options::default();
    opt.title = o.title.clone();
    opt.subtitle = o.subtitle.clone();
    opt.count_name = if o.count { "blocks" } else { "bytes" }.to_string();
    opt.name_type = "Frame:".to_string();
    opt.palette_map = Some(&mut map);
    let text: Vec<String> = lines.iter().map(|(l, w)| format!("{l} {w}")).collect();
    flamegraph::from_lines(&mut opt, text.iter().map(String::as_str), out)
}
