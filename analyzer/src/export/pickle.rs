//! A pickle of a `tracemalloc.Snapshot`, the file `Snapshot.dump()` writes
//! and `Snapshot.load()` reads (CPython 3.9–3.13; `Lib/tracemalloc.py`).
//!
//! `Snapshot.dump` pickles the instance itself: `Snapshot` with
//! `__dict__ = {'traces': _Traces, 'traceback_limit': int}`, `_Traces` with
//! `{'_traces': [trace, ...]}`, a trace `(domain, size, frames,
//! total_nframe)`, frames `((filename, lineno), ...)` most recent first.
//! Written by hand, with a dozen protocol-4 opcodes, because the pickle
//! crates (serde-pickle) serialize plain data only: they cannot express a
//! class instance (a global, `NEWOBJ`, `BUILD`), which is what `load()`
//! must get back. Repeated strings, frame tuples and traces are memoized,
//! so a group of c blocks costs c `BINGET`s.

use super::{Group, Stacks};
use crate::frame::FrameTable;
use crate::util::FxHashMap as HashMap;

mod op {
    pub const PROTO: u8 = 0x80;
    pub const STOP: u8 = b'.';
    pub const MARK: u8 = b'(';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const EMPTY_LIST: u8 = b']';
    pub const EMPTY_DICT: u8 = b'}';
    pub const APPENDS: u8 = b'e';
    pub const SETITEMS: u8 = b'u';
    pub const SETITEM: u8 = b's';
    pub const BUILD: u8 = b'b';
    pub const NEWOBJ: u8 = 0x81;
    pub const TUPLE: u8 = b't';
    pub const TUPLE2: u8 = 0x86;
    pub const BININT: u8 = b'J';
    pub const BININT1: u8 = b'K';
    pub const BININT2: u8 = b'M';
    pub const LONG1: u8 = 0x8a;
    pub const BINUNICODE: u8 = b'X';
    pub const SHORT_BINUNICODE: u8 = 0x8c;
    pub const STACK_GLOBAL: u8 = 0x93;
    pub const MEMOIZE: u8 = 0x94;
    pub const LONG_BINGET: u8 = b'j';
}

/// A protocol-4 pickle being written.
struct Pickler {
    out: Vec<u8>,
    memo_len: u32,
    strings: HashMap<String, u32>,
}

impl Pickler {
    fn memoize(&mut self) -> u32 {
        self.out.push(op::MEMOIZE);
        self.memo_len += 1;
        self.memo_len - 1
    }

    fn get(&mut self, i: u32) {
        self.out.push(op::LONG_BINGET);
        self.out.extend_from_slice(&i.to_le_bytes());
    }

    fn int(&mut self, v: u64) {
        if v < 0x100 {
            self.out.extend_from_slice(&[op::BININT1, v as u8]);
        } else if v < 0x10000 {
            self.out.push(op::BININT2);
            self.out.extend_from_slice(&(v as u16).to_le_bytes());
        } else if v < 0x8000_0000 {
            self.out.push(op::BININT);
            self.out.extend_from_slice(&(v as u32).to_le_bytes());
        } else {
            // LONG1: little-endian two's complement, with a 0 byte on top
            // when the high bit is set (the value is positive).
            let mut b = v.to_le_bytes().to_vec();
            while b.len() > 1 && b[b.len() - 1] == 0 && b[b.len() - 2] & 0x80 == 0 {
                b.pop();
            }
            if b[b.len() - 1] & 0x80 != 0 {
                b.push(0);
            }
            self.out.extend_from_slice(&[op::LONG1, b.len() as u8]);
            self.out.extend_from_slice(&b);
        }
    }

    fn str_raw(&mut self, s: &str) {
        if s.len() < 256 {
            self.out
                .extend_from_slice(&[op::SHORT_BINUNICODE, s.len() as u8]);
        } else {
            self.out.push(op::BINUNICODE);
            self.out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        }
        self.out.extend_from_slice(s.as_bytes());
    }

    /// A string, memoized: written once, fetched after.
    fn str(&mut self, s: &str) {
        if let Some(&i) = self.strings.get(s) {
            return self.get(i);
        }
        self.str_raw(s);
        let i = self.memoize();
        self.strings.insert(s.to_string(), i);
    }

    /// `module.name()` with no arguments: `cls.__new__(cls)` (as
    /// `copyreg.__newobj__` pickles an instance), left on the stack.
    fn new_object(&mut self, module: &str, name: &str) {
        self.str(module);
        self.str(name);
        self.out.push(op::STACK_GLOBAL);
        self.memoize();
        self.out.push(op::EMPTY_TUPLE);
        self.out.push(op::NEWOBJ);
        self.memoize();
    }
}

/// What the snapshot holds: for each group, `count` traces of `size`
/// bytes (a sampled snapshot's groups scaled to their rounded estimates).
pub struct PickleSnapshot<'a> {
    pub groups: &'a [Group],
    pub sample_rate: u64,
    /// `traceback_limit`: the frame limit the snapshot was taken with.
    pub traceback_limit: u64,
}

/// The pickle's bytes.
pub fn write(stacks: &Stacks, table: &FrameTable, s: &PickleSnapshot) -> Vec<u8> {
    let mut p = Pickler {
        out: vec![op::PROTO, 4],
        memo_len: 0,
        strings: HashMap::default(),
    };
    p.new_object("tracemalloc", "Snapshot");
    p.out.push(op::EMPTY_DICT);
    p.memoize();
    p.out.push(op::MARK);
    p.str("traces");
    p.new_object("tracemalloc", "_Traces");
    p.out.push(op::EMPTY_DICT);
    p.memoize();
    p.str("_traces");
    p.out.push(op::EMPTY_LIST);
    p.memoize();
    // The frames tuple of each stack, memoized when first written.
    let mut frame_tuples: HashMap<usize, u32> = HashMap::default();
    let mut pending = 0usize;
    p.out.push(op::MARK);
    for g in s.groups {
        let count = if s.sample_rate > 0 {
            super::round(g.estimate(s.sample_rate).1)
        } else {
            g.count
        };
        if count == 0 {
            continue;
        }
        let st = &stacks.stacks[g.stack];
        // One trace tuple, then `count - 1` references to it.
        p.out.push(op::MARK);
        p.int(g.domain as u64);
        p.int(g.size);
        match frame_tuples.get(&g.stack) {
            Some(&i) => p.get(i),
            None => {
                p.out.push(op::MARK);
                for &f in &st.frames {
                    let f = table.frame(f);
                    p.str(&f.filename);
                    p.int(f.lineno as u64);
                    p.out.push(op::TUPLE2);
                }
                p.out.push(op::TUPLE);
                let i = p.memoize();
                frame_tuples.insert(g.stack, i);
            }
        }
        // total_nframe: the stack's depth; a truncated one was deeper.
        p.int(st.frames.len() as u64 + st.truncated as u64);
        p.out.push(op::TUPLE);
        let trace = p.memoize();
        for n in 0..count {
            if n > 0 {
                p.get(trace);
            }
            pending += 1;
            if pending == 1000 {
                p.out.push(op::APPENDS);
                p.out.push(op::MARK);
                pending = 0;
            }
        }
    }
    p.out.push(op::APPENDS);
    p.out.push(op::SETITEM); // _Traces.__dict__['_traces']
    p.out.push(op::BUILD);
    p.str("traceback_limit");
    p.int(s.traceback_limit);
    p.out.push(op::SETITEMS); // Snapshot.__dict__
    p.out.push(op::BUILD);
    p.out.push(op::STOP);
    p.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::Stack;

    fn ints(v: u64) -> Vec<u8> {
        let mut p = Pickler {
            out: Vec::new(),
            memo_len: 0,
            strings: HashMap::default(),
        };
        p.int(v);
        p.out
    }

    #[test]
    fn integers_as_cpython_pickles_them() {
        // pickle.dumps(v, 4) of CPython, opcodes and arguments.
        assert_eq!(ints(255), [op::BININT1, 255]);
        assert_eq!(ints(256), [op::BININT2, 0, 1]);
        assert_eq!(ints(0x7fff_ffff), [op::BININT, 0xff, 0xff, 0xff, 0x7f]);
        assert_eq!(ints(1 << 31), [op::LONG1, 5, 0, 0, 0, 0x80, 0]);
        assert_eq!(ints(1 << 32), [op::LONG1, 5, 0, 0, 0, 0, 1]);
        let mut max = vec![op::LONG1, 9];
        max.extend_from_slice(&[0xff; 8]);
        max.push(0);
        assert_eq!(ints(u64::MAX), max);
    }

    /// CPython's `tracemalloc.Snapshot.load` reads big sizes, long and
    /// non-ASCII file names, many traces (several APPENDS batches) and
    /// shared frame tuples back exactly.
    #[test]
    fn python_loads_what_is_written() {
        let mut table = FrameTable::new();
        let long = format!("/src/{}/é.c", "d".repeat(300));
        let a = table.intern_location("/src/a.c", 7);
        let b = table.intern_location(&long, 12);
        let c = table.intern_location("/src/main.c", 3);
        let stacks = Stacks {
            locations: Vec::new(),
            stacks: vec![
                Stack {
                    locations: vec![],
                    frames: vec![a, c],
                    truncated: false,
                },
                Stack {
                    locations: vec![],
                    frames: vec![b, c],
                    truncated: true,
                },
            ],
            by_id: HashMap::default(),
        };
        let groups = [
            Group::blocks(0, 5 << 30, 2),
            Group::blocks(1, 40, 2500),
            Group::blocks(0, 1, 1),
        ];
        let bytes = write(
            &stacks,
            &table,
            &PickleSnapshot {
                groups: &groups,
                sample_rate: 0,
                traceback_limit: 16,
            },
        );
        let path =
            std::env::temp_dir().join(format!("memtrace-pickle-{}.pickle", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        let script = "import sys, tracemalloc\n\
            s = tracemalloc.Snapshot.load(sys.argv[1])\n\
            print(s.traceback_limit, len(s.traces))\n\
            for st in s.statistics('traceback'):\n\
            \x20   print(st.size, st.count, [(f.filename[-6:], f.lineno) for f in st.traceback])\n\
            print(sorted(set((t.size, t.traceback.total_nframe) for t in s.traces)))\n";
        let out = std::process::Command::new("python3")
            .args(["-c", script])
            .arg(&path)
            .output()
            .expect("run python3");
        let _ = std::fs::remove_file(&path);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let want = format!(
            "16 2503\n\
             {} 3 [('main.c', 3), ('rc/a.c', 7)]\n\
             100000 2500 [('main.c', 3), ('dd/é.c', 12)]\n\
             [(1, 2), (40, 3), ({}, 2)]\n",
            2 * (5u64 << 30) + 1,
            5u64 << 30
        );
        assert_eq!(text, want);
    }
}
