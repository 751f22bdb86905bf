//! What /proc and the process's ELF files say before anything is touched:
//! whether `memtrace attach` can trace the process at all, and where glibc's
//! dlopen, dlsym and dlerror are in it.

use memtrace_format::naming;
use object::{Object, ObjectSegment, ObjectSymbol};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// One line of /proc/PID/maps that maps a file.
struct Mapping {
    start: u64,
    offset: u64,
    path: PathBuf,
}

/// A running process that looks traceable, and glibc's loader functions in it.
pub struct Target {
    pub dlopen: u64,
    pub dlsym: u64,
    pub dlerror: u64,
}

/// Refuses, with the one line the user sees, a process that is not there,
/// cannot be read, is traced already, is statically linked or does not
/// use glibc's malloc; else finds dlopen, dlsym and dlerror in its libc.
pub fn inspect(pid: i32) -> Result<Target, String> {
    let maps_text = std::fs::read(format!("/proc/{pid}/maps")).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("no process {pid}"),
        std::io::ErrorKind::PermissionDenied => {
            format!("cannot attach to process {pid}: permission denied")
        }
        _ => format!("cannot read process {pid}'s memory map: {e}"),
    })?;
    if maps_text
        .split(|&c| c == b'\n')
        .any(|l| naming::parse_beacon(l).is_some())
    {
        return Err(format!("process {pid} is traced by memtrace already"));
    }
    let maps = parse_maps(&maps_text);
    if maps.iter().any(|m| file_name(&m.path) == b"libtrace.so") {
        return Err(format!("process {pid} has libtrace.so loaded already"));
    }
    check_dynamic(pid)?;
    check_seccomp(pid)?;
    let libc = maps
        .iter()
        .find(|m| is_libc(&m.path))
        .ok_or_else(|| format!("process {pid} does not use glibc (no libc.so.6 in it): memtrace attach cannot trace it"))?
        .path
        .clone();
    check_malloc_owner(pid, &maps, &libc)?;
    let lib = Loaded::find(pid, &maps, &libc)?;
    let sym = |name: &str| {
        lib.symbol(name).ok_or_else(|| {
            format!(
                "{} has no {name}: memtrace attach needs glibc 2.34 or later",
                libc.display()
            )
        })
    };
    Ok(Target {
        dlopen: sym("dlopen")?,
        dlsym: sym("dlsym")?,
        dlerror: sym("dlerror")?,
    })
}

fn parse_maps(text: &[u8]) -> Vec<Mapping> {
    let text = String::from_utf8_lossy(text);
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let range = f.next()?;
            let _perms = f.next()?;
            let offset = u64::from_str_radix(f.next()?, 16).ok()?;
            let _dev = f.next()?;
            let _inode = f.next()?;
            let path = f.collect::<Vec<_>>().join(" ");
            if !path.starts_with('/') {
                return None;
            }
            let start = u64::from_str_radix(range.split('-').next()?, 16).ok()?;
            Some(Mapping {
                start,
                offset,
                path: PathBuf::from(path),
            })
        })
        .collect()
}

fn file_name(p: &Path) -> &[u8] {
    p.file_name().map(|n| n.as_bytes()).unwrap_or_default()
}

fn is_libc(p: &Path) -> bool {
    let n = file_name(p);
    n == b"libc.so.6" || (n.starts_with(b"libc-") && n.ends_with(b".so"))
}

fn is_loader(p: &Path) -> bool {
    file_name(p).starts_with(b"ld-linux")
}

/// A file as the process sees it (through its root: containers).
fn open_elf(pid: i32, path: &Path) -> Option<memmap2::Mmap> {
    let inside = PathBuf::from(format!("/proc/{pid}/root")).join(path.strip_prefix("/").ok()?);
    let f = std::fs::File::open(&inside)
        .or_else(|_| std::fs::File::open(path))
        .ok()?;
    // SAFETY: a read-only private mapping of a file; a file truncated under
    // us could fault, as for every symbolizer that maps its inputs.
    let map = unsafe { memmap2::Mmap::map(&f) }.ok()?;
    map.starts_with(b"\x7fELF").then_some(map)
}

/// A statically linked executable has no loader to dlopen with.
fn check_dynamic(pid: i32) -> Result<(), String> {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
    let Some(map) = open_elf(pid, Path::new(&format!("/proc/{pid}/exe"))) else {
        return Ok(()); // unreadable: the libc check below decides
    };
    let interp = has_interp(&map);
    if interp {
        Ok(())
    } else {
        Err(format!(
            "process {pid} ({}) is statically linked: memtrace attach cannot load libtrace.so into it",
            exe.display()
        ))
    }
}

/// A process under a seccomp filter (a sandbox) may be killed by the
/// kernel for a system call dlopen or our writer thread makes: refused.
fn check_seccomp(pid: i32) -> Result<(), String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let mode = status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .map(str::trim);
    if mode.is_some_and(|m| m != "0") {
        return Err(format!(
            "process {pid} runs under a seccomp filter: loading libtrace.so into it could get it killed"
        ));
    }
    Ok(())
}

/// Does the ELF file have a PT_INTERP program header (a loader)? Read from
/// the ELF64 header by hand: `object` lists only PT_LOAD segments.
fn has_interp(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |o: usize| {
        elf.get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()) as usize)
    };
    let (Some(phoff), Some(entsize), Some(n)) = (u64_at(32), u16_at(54), u16_at(56)) else {
        return false;
    };
    (0..n).any(|i| {
        let at = phoff.saturating_add(i.saturating_mul(entsize));
        elf.get(at..at + 4)
            .is_some_and(|t| u32::from_le_bytes([t[0], t[1], t[2], t[3]]) == PT_INTERP)
    })
}

/// Another allocator (jemalloc, tcmalloc, the program's own malloc) would
/// bypass the hooks: refused when any module but libc and the loader
/// defines `malloc`.
fn check_malloc_owner(pid: i32, maps: &[Mapping], libc: &Path) -> Result<(), String> {
    let mut seen: Vec<&Path> = Vec::new();
    for m in maps {
        if seen.contains(&m.path.as_path()) || m.path == libc || is_loader(&m.path) {
            continue;
        }
        seen.push(&m.path);
        let Some(map) = open_elf(pid, &m.path) else {
            continue;
        };
        let Ok(elf) = object::File::parse(&*map) else {
            continue;
        };
        let defines = elf
            .dynamic_symbols()
            .any(|s| s.name_bytes() == Ok(b"malloc") && s.is_definition());
        if defines {
            return Err(format!(
                "process {pid}'s malloc comes from {}, not glibc: memtrace attach cannot trace it",
                m.path.display()
            ));
        }
    }
    Ok(())
}

/// A module loaded in the process: its file and load bias.
struct Loaded {
    map: memmap2::Mmap,
    bias: u64,
}

impl Loaded {
    fn find(pid: i32, maps: &[Mapping], path: &Path) -> Result<Loaded, String> {
        let cannot = || format!("cannot read {} of process {pid}", path.display());
        let first = maps
            .iter()
            .filter(|m| m.path == path)
            .min_by_key(|m| m.offset)
            .ok_or_else(cannot)?;
        let map = open_elf(pid, path).ok_or_else(cannot)?;
        let elf = object::File::parse(&*map).map_err(|_| cannot())?;
        // The lowest mapping is the first PT_LOAD, page-aligned.
        let first_load = elf
            .segments()
            .map(|s| s.address())
            .min()
            .ok_or_else(cannot)?;
        let bias = first.start.wrapping_sub(first_load & !0xfff);
        drop(elf);
        Ok(Loaded { map, bias })
    }

    fn symbol(&self, name: &str) -> Option<u64> {
        let elf = object::File::parse(&*self.map).ok()?;
        elf.dynamic_symbols()
            .find(|s| s.name() == Ok(name) && s.is_definition())
            .map(|s| self.bias.wrapping_add(s.address()))
    }
}
