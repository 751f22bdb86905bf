//! The flame graph's data: a view's traces aggregated into one call tree
//! (oldest frame at the root, merged frame by frame), its nodes' bytes and
//! blocks, and a table of the frames it names with their source lines. The
//! report's JavaScript draws it; here it only becomes compact JSON
//! (`[frame, bytes, blocks, [children…]]` per node), so 50 000 stacks cost
//! one pass and a tree whose size is bounded by the threshold below, not
//! by the number of stacks.

use crate::format::LineCache;
use crate::frame::{FrameId, FrameTable};
use crate::sampling::estimate_sum;
use crate::snapshot::Snapshot;
use crate::util::FxHashMap as HashMap;
use serde_json::{json, Value};

/// Nodes smaller than this fraction of the view's bytes are left out of
/// the embedded tree (their bytes stay in their parent's width).
pub const MIN_FRACTION: f64 = 1e-4;

struct Node {
    frame: FrameId,
    bytes: f64,
    blocks: f64,
    children: Vec<usize>,
}

/// The call tree of one view.
pub struct Tree {
    nodes: Vec<Node>,
}

impl Tree {
    /// Aggregates `snap`'s traces (scaled when it is sampled).
    pub fn of(snap: &Snapshot) -> Tree {
        let rate = snap.sample_rate();
        let mut nodes = vec![Node {
            frame: FrameId::MAX,
            bytes: 0.0,
            blocks: 0.0,
            children: Vec::new(),
        }];
        let mut child: HashMap<(usize, FrameId), usize> = HashMap::default();
        // Each traceback's path once, then its traces' weights along it.
        let mut weights: HashMap<u32, (f64, f64)> = HashMap::default();
        for t in &snap.traces {
            let (b, c) = if rate > 0 {
                estimate_sum(t.size, t.count, t.bytes, rate)
            } else {
                (t.bytes as f64, t.count as f64)
            };
            let w = weights.entry(t.traceback).or_default();
            w.0 += b;
            w.1 += c;
        }
        let mut tbs: Vec<(u32, (f64, f64))> = weights.into_iter().collect();
        tbs.sort_by_key(|x| x.0);
        for (tb, (b, c)) in tbs {
            let mut cur = 0;
            nodes[0].bytes += b;
            nodes[0].blocks += c;
            for &f in snap.tracebacks[tb as usize].frames.iter().rev() {
                let next = *child.entry((cur, f)).or_insert_with(|| {
                    nodes.push(Node {
                        frame: f,
                        bytes: 0.0,
                        blocks: 0.0,
                        children: Vec::new(),
                    });
                    let i = nodes.len() - 1;
                    nodes[cur].children.push(i);
                    i
                });
                nodes[next].bytes += b;
                nodes[next].blocks += c;
                cur = next;
            }
        }
        Tree { nodes }
    }

    /// Bytes and blocks of the whole view.
    pub fn total(&self) -> (u64, u64) {
        (
            self.nodes[0].bytes.round() as u64,
            self.nodes[0].blocks.round() as u64,
        )
    }

    /// The tree as JSON, frames numbered through `frames`; nodes under
    /// `MIN_FRACTION` of the total are left out. Returns (tree, nodes kept,
    /// nodes left out).
    pub fn to_json(&self, frames: &mut FrameIndex) -> (Value, usize, usize) {
        let min = self.nodes[0].bytes * MIN_FRACTION;
        let mut kept = 0;
        let mut dropped = 0;
        let v = self.node_json(0, min, frames, &mut kept, &mut dropped);
        (v, kept, dropped)
    }

    fn node_json(
        &self,
        i: usize,
        min: f64,
        frames: &mut FrameIndex,
        kept: &mut usize,
        dropped: &mut usize,
    ) -> Value {
        let n = &self.nodes[i];
        *kept += 1;
        let mut kids: Vec<usize> = Vec::new();
        for &c in &n.children {
            if self.nodes[c].bytes >= min && self.nodes[c].bytes > 0.0 {
                kids.push(c);
            } else {
                *dropped += 1;
            }
        }
        kids.sort_by(|&a, &b| self.nodes[b].bytes.total_cmp(&self.nodes[a].bytes));
        let children: Vec<Value> = kids
            .into_iter()
            .map(|c| self.node_json(c, min, frames, kept, dropped))
            .collect();
        let f = if i == 0 {
            -1
        } else {
            frames.index(n.frame) as i64
        };
        json!([f, n.bytes.round() as u64, n.blocks.round() as u64, children])
    }
}

/// The frames the embedded trees name, numbered in order of first use.
#[derive(Default)]
pub struct FrameIndex {
    ids: HashMap<FrameId, usize>,
    order: Vec<FrameId>,
}

impl FrameIndex {
    pub fn index(&mut self, f: FrameId) -> usize {
        *self.ids.entry(f).or_insert_with(|| {
            self.order.push(f);
            self.order.len() - 1
        })
    }

    /// `[[name, location, source line or null, system], …]`.
    pub fn to_json(&self, table: &FrameTable, lc: &mut LineCache) -> Value {
        Value::Array(
            self.order
                .iter()
                .map(|&id| {
                    let f = table.frame(id);
                    let name = match &f.function {
                        Some(func) => func.clone(),
                        None => f.filename.clone(),
                    };
                    let loc = if f.has_line {
                        f.location()
                    } else {
                        f.module.clone().unwrap_or_else(|| f.filename.clone())
                    };
                    let src = if f.has_line {
                        lc.getline(&f.filename, f.lineno)
                    } else {
                        None
                    };
                    json!([name, loc, src, f.system])
                })
                .collect(),
        )
    }
}
