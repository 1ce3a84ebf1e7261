//! `compare`: the side-by-side runner of issue 4.
//!
//! ```text
//! cargo run --release -p benches --bin compare -- [--quick] [--threads 1,2,4,8,16]
//!     [--workloads w1,w1f,w2,w3,w4,w5] [--sizes 256,4k,64k,1m]
//!     [--contenders pool-core,tls-floor,...] [--bins PATH,PATH]
//!     [--tracing-bin PATH] [--out DIR] [--rounds N]
//! cargo run --release -p benches --bin compare -- --instructions
//!     [--contenders ...] [--sizes ...] [--bins PATH,PATH] [--out DIR]
//! ```
//!
//! Every point (workload, contender, size, threads) runs in a fresh child
//! process (this binary re-executed with the hidden `--child` flag), so
//! pools and allocators start empty and peak RSS is the contender's own.
//! `--bins` names other builds of this binary (built with `--features
//! jemalloc` or `--features mimalloc`): each point runs under every build
//! in the same run, interleaved, and rows carry the allocator.
//! `--rounds N` runs every point N times, each round visiting every
//! contender in turn, and keeps the median child.
//! `--tracing-bin` names a build with `--features tracing`, which W6 runs
//! against this one (pool-tokio's `tracing` feature off). Prints one
//! markdown table per workload plus a target check, and writes
//! `results.csv`, `report.md` and `w2-scaling.svg` under `--out`
//! (default `target/compare`).
//!
//! `--instructions` times nothing: it counts the instructions of one W1
//! operation per contender, size and build under valgrind's callgrind
//! (deterministic, so it sees what timing noise hides). Each point runs
//! `--profile` twice, with 100,000 and with 200,000 operations, and the
//! figure is the difference of the two programs' totals divided by
//! 100,000, so start-up, warm-up and tear-down cancel out. Prints a
//! markdown table and writes `instructions.md` under `--out`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use benches::workloads::{self, Budget, Measurement};
use benches::{for_contender, Contender, Visit, CONTENDERS, THIS_PROJECT};

/// Size of the W2, W3 and W4 buffers.
const SMALL: usize = 4096;
/// Size of the W5 buffers.
const BURST_SIZE: usize = 64 * 1024;
/// The workloads, in run order.
const WORKLOADS: &[&str] = &["w1", "w1f", "w2", "w3", "w4", "w5", "w6"];
/// Pool crates (for W5's "fastest pool crate").
const POOL_CRATES: &[&str] = &[
    "sharded-slab",
    "lockfree-linear",
    "lockfree-spin",
    "object-pool",
    "opool",
    "mutex-vec",
    "arrayqueue",
];

struct Args {
    quick: bool,
    threads: Vec<usize>,
    workloads: Vec<String>,
    sizes: Vec<usize>,
    contenders: Vec<String>,
    contenders_given: bool,
    bins: Vec<PathBuf>,
    tracing_bin: Option<PathBuf>,
    out: PathBuf,
    instructions: bool,
    rounds: usize,
}

fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim().to_ascii_lowercase();
    let (num, mul) = match s.as_bytes().last() {
        Some(b'k') => (&s[..s.len() - 1], 1024),
        Some(b'm') => (&s[..s.len() - 1], 1 << 20),
        _ => (&s[..], 1),
    };
    let n: usize = num.parse().map_err(|_| format!("bad size {s:?}"))?;
    if n * mul < 128 {
        return Err(format!("size {s:?} is below 128 bytes"));
    }
    Ok(n * mul)
}

fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
        .collect()
}

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let cores = std::thread::available_parallelism().map_or(1, |p| p.get());
    let mut args = Args {
        quick: false,
        threads: Vec::new(),
        workloads: WORKLOADS.iter().map(|s| s.to_string()).collect(),
        sizes: vec![256, 4096, 64 * 1024, 1 << 20],
        contenders: CONTENDERS.iter().map(|s| s.to_string()).collect(),
        contenders_given: false,
        bins: Vec::new(),
        tracing_bin: None,
        out: PathBuf::from("target/compare"),
        instructions: false,
        rounds: 1,
    };
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--quick" => args.quick = true,
            "--threads" => {
                args.threads = list(&value()?)
                    .iter()
                    .map(|t| match t.parse::<usize>() {
                        Ok(t) if (1..=256).contains(&t) => Ok(t),
                        _ => Err(format!("bad thread count {t:?}")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "--workloads" => args.workloads = list(&value()?),
            "--sizes" => {
                args.sizes = list(&value()?)
                    .iter()
                    .map(|s| parse_size(s))
                    .collect::<Result<_, _>>()?
            }
            "--contenders" => {
                args.contenders = list(&value()?);
                args.contenders_given = true;
            }
            "--bins" => args.bins = list(&value()?).into_iter().map(PathBuf::from).collect(),
            "--tracing-bin" => args.tracing_bin = Some(PathBuf::from(value()?)),
            "--out" => args.out = PathBuf::from(value()?),
            "--instructions" => args.instructions = true,
            "--rounds" => {
                args.rounds = match value()?.parse::<usize>() {
                    Ok(r) if (1..=100).contains(&r) => r,
                    _ => return Err("--rounds needs a count from 1 to 100".into()),
                }
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.threads.is_empty() {
        args.threads = if args.quick {
            vec![1, 2]
        } else {
            let mut t: Vec<usize> = [1, 2, 4, 8, 16]
                .into_iter()
                .filter(|&t| t <= cores.max(2))
                .collect();
            if !t.contains(&cores) && cores <= 16 {
                t.push(cores);
            }
            t
        };
    }
    for w in &args.workloads {
        if !WORKLOADS.contains(&w.as_str()) {
            return Err(format!(
                "unknown workload {w:?} (known: {}; w7 is not implemented yet)",
                WORKLOADS.join(",")
            ));
        }
    }
    for c in &args.contenders {
        if !CONTENDERS.contains(&c.as_str()) {
            return Err(format!(
                "unknown contender {c:?} (known: {})",
                CONTENDERS.join(",")
            ));
        }
    }
    Ok(args)
}

// ------------------------------------------------------------------ child

struct Point<'a> {
    workload: &'a str,
    size: usize,
    threads: usize,
    budget: Budget,
}

impl Visit for Point<'_> {
    type Output = Measurement;
    fn visit<C: Contender>(self, c: &'static C) -> Measurement {
        benches::set_create_size(self.size);
        match self.workload {
            "w1" => workloads::w1(c, self.size, false, self.budget),
            "w1f" => workloads::w1(c, self.size, true, self.budget),
            "w2" => workloads::w2(c, self.size, self.threads, self.budget),
            "w3" => workloads::w3(c, self.size, self.threads, self.budget),
            "w4" => workloads::w4(c, self.size, self.threads, self.budget),
            "w5" => workloads::w5(c, self.size),
            "w6" => workloads::w1(c, self.size, false, self.budget),
            "w6s" => {
                if !benches::install_rejecting_subscriber() {
                    panic!("w6s needs a build with the `tracing` feature");
                }
                workloads::w1(c, self.size, false, self.budget)
            }
            other => panic!("unknown workload {other}"),
        }
    }
}

/// `--child WORKLOAD CONTENDER SIZE THREADS quick|full`: measures one point
/// and prints it as one tab-separated `ROW` line.
fn child(argv: &[String]) -> ExitCode {
    let [workload, contender, size, threads, mode] = argv else {
        eprintln!("--child needs WORKLOAD CONTENDER SIZE THREADS MODE");
        return ExitCode::FAILURE;
    };
    let (Ok(size), Ok(threads)) = (size.parse(), threads.parse()) else {
        eprintln!("--child: bad size or thread count");
        return ExitCode::FAILURE;
    };
    let budget = if mode == "quick" {
        Budget::quick()
    } else {
        Budget::full()
    };
    let point = Point {
        workload,
        size,
        threads,
        budget,
    };
    let Some(m) = for_contender(contender, point) else {
        eprintln!("--child: unknown contender {contender}");
        return ExitCode::FAILURE;
    };
    let extra: Vec<String> = m.extra.iter().map(|(k, v)| format!("{k}={v:.2}")).collect();
    println!(
        "ROW\t{}\t{}\t{}\t{}\t{}\t{}",
        benches::build_label(),
        m.ns_per_op,
        m.mops,
        m.peak_rss,
        extra.join(";"),
        m.note
    );
    ExitCode::SUCCESS
}

struct Fixed {
    size: usize,
    iters: u64,
}

impl Visit for Fixed {
    type Output = Duration;
    fn visit<C: Contender>(self, c: &'static C) -> Duration {
        benches::set_create_size(self.size);
        workloads::w1_loop(c, self.size, false, 1000);
        workloads::w1_loop(c, self.size, false, self.iters)
    }
}

/// `--profile CONTENDER SIZE ITERS`: 1,000 warm-up W1 operations, then
/// exactly ITERS in one `w1_loop` call; for instruction counting under
/// `valgrind --tool=callgrind` (inclusive cost of `w1_loop` / ITERS).
fn profile(argv: &[String]) -> ExitCode {
    let [contender, size, iters] = argv else {
        eprintln!("--profile needs CONTENDER SIZE ITERS");
        return ExitCode::FAILURE;
    };
    let (Ok(size), Ok(iters)) = (size.parse(), iters.parse()) else {
        eprintln!("--profile: bad size or iteration count");
        return ExitCode::FAILURE;
    };
    match for_contender(contender, Fixed { size, iters }) {
        Some(t) => {
            println!(
                "{contender} ({}): {:.1} ns/op",
                benches::build_label(),
                t.as_nanos() as f64 / iters as f64
            );
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("--profile: unknown contender {contender}");
            ExitCode::FAILURE
        }
    }
}

/// Operations of the shorter and the longer `--profile` run of
/// `--instructions`; the figure is their difference in instructions over
/// the difference in operations.
const COUNT_RUNS: (u64, u64) = (100_000, 200_000);

/// Total instructions callgrind counted for `bin --profile c size iters`,
/// and the build label the run printed.
fn callgrind_total(
    bin: &Path,
    c: &str,
    size: usize,
    iters: u64,
    scratch: &Path,
) -> Result<(u64, String), String> {
    let file = scratch.join(format!("callgrind.{c}.{size}.{iters}.out"));
    let out = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", file.display()))
        .arg(bin)
        .args(["--profile", c, &size.to_string(), &iters.to_string()])
        .output()
        .map_err(|e| format!("cannot run valgrind (is it installed?): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "callgrind {c} {size} {iters}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let label = String::from_utf8_lossy(&out.stdout)
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .map_or("?".to_string(), |(label, _)| label.to_string());
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let _ = std::fs::remove_file(&file);
    let total = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or(format!("no instruction total in {}", file.display()))?;
    Ok((total, label))
}

/// `--instructions`: instructions per W1 operation for every build,
/// contender and size; see the module docs.
fn instructions(args: &Args, bins: &[PathBuf]) -> ExitCode {
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        eprintln!("error: cannot create {}: {e}", args.out.display());
        return ExitCode::FAILURE;
    }
    let (short, long) = COUNT_RUNS;
    let mut table = format!(
        "\n### Instructions per W1 operation (callgrind: (I({long}) - I({short})) / {})\n\n| contender | allocator | size | instructions |\n|---|---|---:|---:|\n",
        long - short
    );
    let mut failures = 0;
    for &size in &args.sizes {
        for c in &args.contenders {
            if c == "pool-core-burst" && !args.contenders_given {
                continue;
            }
            for bin in bins {
                let counted =
                    callgrind_total(bin, c, size, short, &args.out).and_then(|(a, label)| {
                        let (b, _) = callgrind_total(bin, c, size, long, &args.out)?;
                        Ok((b.saturating_sub(a) as f64 / (long - short) as f64, label))
                    });
                match counted {
                    Ok((per_op, label)) => {
                        let row =
                            format!("| {c} | {label} | {} | {per_op:.1} |\n", human_size(size));
                        print!("{row}");
                        table.push_str(&row);
                    }
                    Err(e) => {
                        failures += 1;
                        eprintln!("error: {e}");
                    }
                }
            }
        }
    }
    let p = args.out.join("instructions.md");
    match std::fs::write(&p, &table) {
        Ok(()) => eprintln!("wrote {}", p.display()),
        Err(e) => eprintln!("error: cannot write {}: {e}", p.display()),
    }
    if failures > 0 {
        eprintln!("{failures} point(s) failed");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

// ------------------------------------------------------------------ parent

#[derive(Clone)]
struct Row {
    workload: String,
    contender: String,
    allocator: String,
    size: usize,
    threads: usize,
    ns: f64,
    mops: f64,
    peak_rss: u64,
    extra: Vec<(String, f64)>,
    note: String,
}

impl Row {
    fn extra(&self, key: &str) -> Option<f64> {
        self.extra.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

fn run_child(
    bin: &Path,
    w: &str,
    c: &str,
    size: usize,
    threads: usize,
    quick: bool,
) -> Result<Row, String> {
    let mode = if quick { "quick" } else { "full" };
    let out = Command::new(bin)
        .args([
            "--child",
            w,
            c,
            &size.to_string(),
            &threads.to_string(),
            mode,
        ])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let Some(line) = stdout.lines().find(|l| l.starts_with("ROW\t")) else {
        return Err(format!(
            "{w} {c} size {size} threads {threads} under {}: {}\n{}",
            bin.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    };
    let f: Vec<&str> = line.split('\t').collect();
    let num = |i: usize| {
        f.get(i)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    Ok(Row {
        workload: w.to_string(),
        contender: c.to_string(),
        allocator: f.get(1).unwrap_or(&"?").to_string(),
        size,
        threads,
        ns: num(2),
        mops: num(3),
        peak_rss: f.get(4).and_then(|s| s.parse().ok()).unwrap_or(0),
        extra: f
            .get(5)
            .unwrap_or(&"")
            .split(';')
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect(),
        note: f.get(6).unwrap_or(&"").to_string(),
    })
}

fn human_size(n: usize) -> String {
    if n >= 1 << 20 && n & ((1 << 20) - 1) == 0 {
        format!("{} MiB", n >> 20)
    } else if n >= 1024 && n & 1023 == 0 {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} B")
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / benches::rss::MIB
}

fn this_project<'a>(rows: &'a [Row], r: &Row) -> Option<&'a Row> {
    rows.iter().find(|p| {
        p.contender == THIS_PROJECT
            && p.workload == r.workload
            && p.allocator == r.allocator
            && p.size == r.size
            && p.threads == r.threads
    })
}

const DESCRIPTIONS: &[(&str, &str)] = &[
    ("w1", "W1: one thread, checkout + write 64 B and the last byte + return; ns/op: the fastest of many 2 ms samples (median beside it), median child of --rounds"),
    ("w1f", "W1f: one thread, checkout + fill the whole buffer + return; ns/op as in W1"),
    ("w2", "W2: T threads on one shared pool doing W1 at 4 KiB behind a Barrier; ns/op per thread, Mops/s aggregate"),
    ("w3", "W3: T producers -> bounded channels (256) -> T consumers, 4 KiB, every return remote; ns/op = wall ns per message; RSS growth = peak over baseline"),
    ("w4", "W4: tokio multi-thread runtime with T workers, 4 tasks per worker, 4 KiB held across yield_now().await then written and returned; ns/op = wall ns per operation"),
    ("w6", "W6: tracing cost: W1 at 4 KiB with pool-tokio's `tracing` feature off (allocator label alone), on with no subscriber (+tracing), on with a subscriber rejecting `trace` (+tracing+rejecting-subscriber)"),
    ("w5", "W5: 2,000 x 64 KiB checked out, filled, returned (twice; the second burst timed, ns per buffer); RSS after, after an idle second (idle ticks), after trim"),
];

fn table(rows: &[Row], w: &str) -> String {
    let mut s = String::new();
    let title = DESCRIPTIONS
        .iter()
        .find(|(k, _)| *k == w)
        .map_or(w, |(_, d)| d);
    let _ = writeln!(s, "\n### {title}\n");
    let ours: Vec<&Row> = rows.iter().filter(|r| r.workload == w).collect();
    let extras: Vec<String> = ours
        .iter()
        .flat_map(|r| r.extra.iter().map(|(k, _)| k.clone()))
        .fold(Vec::new(), |mut acc, k| {
            if !acc.contains(&k) {
                acc.push(k);
            }
            acc
        });
    let _ = write!(
        s,
        "| contender | allocator | size | threads | ns/op | Mops/s | ratio to {THIS_PROJECT} | peak RSS MiB |"
    );
    for e in &extras {
        let _ = write!(s, " {} |", e.replace('_', " "));
    }
    let _ = write!(s, "\n|---|---|---:|---:|---:|---:|---:|---:|");
    for _ in &extras {
        let _ = write!(s, "---:|");
    }
    s.push('\n');
    let mut sorted = ours.clone();
    let order = |c: &str| {
        CONTENDERS
            .iter()
            .position(|x| *x == c)
            .unwrap_or(usize::MAX)
    };
    sorted.sort_by(|a, b| {
        (a.size, a.threads, &a.allocator, order(&a.contender)).cmp(&(
            b.size,
            b.threads,
            &b.allocator,
            order(&b.contender),
        ))
    });
    for r in sorted {
        let ratio =
            this_project(rows, r).map_or("-".to_string(), |p| format!("{:.2}", r.ns / p.ns));
        let _ = write!(
            s,
            "| {} | {} | {} | {} | {:.1} | {:.2} | {} | {:.1} |",
            r.contender,
            r.allocator,
            human_size(r.size),
            r.threads,
            r.ns,
            r.mops,
            ratio,
            mib(r.peak_rss)
        );
        for e in &extras {
            let _ = write!(
                s,
                " {} |",
                r.extra(e).map_or("-".into(), |v| format!("{v:.1}"))
            );
        }
        s.push('\n');
    }
    if let Some(note) = ours
        .iter()
        .find(|r| r.contender == THIS_PROJECT && !r.note.is_empty())
    {
        let _ = writeln!(s, "\n{THIS_PROJECT} in W5: {}.", note.note);
    }
    let _ = writeln!(
        s,
        "\nratio = contender ns/op / {THIS_PROJECT} ns/op in the same allocator build, size and threads (above 1: {THIS_PROJECT} is faster)."
    );
    s
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

/// The issue-4 targets that this run's rows can decide.
fn targets(rows: &[Row]) -> String {
    let mut s = String::from("\n### Targets in this run (issues 4 and 15)\n\n| target | allocator | measured | verdict |\n|---|---|---|---|\n");
    let ours = |r: &&Row| r.contender == THIS_PROJECT;
    let find = |w: &str, c: &str, a: &str, size: usize, t: usize| {
        rows.iter().find(|r| {
            r.workload == w
                && r.contender == c
                && r.allocator == a
                && r.size == size
                && r.threads == t
        })
    };
    for w in ["w1", "w1f"] {
        for p in rows.iter().filter(|r| r.workload == w).filter(ours) {
            let fresh = rows
                .iter()
                .filter(|r| r.workload == w && r.contender == "fresh-bytesmut" && r.size == p.size)
                .min_by(|a, b| a.ns.total_cmp(&b.ns));
            if let Some(f) = fresh {
                let _ = writeln!(
                    s,
                    "| {} {}: no slower than the best fresh BytesMut ({}) | {} | {:.1} ns vs {:.1} ns: ratio {:.2} | {} |",
                    w.to_uppercase(), human_size(p.size), f.allocator, p.allocator, p.ns, f.ns, p.ns / f.ns, verdict(p.ns <= f.ns)
                );
            }
            if let Some(f) = find(w, "fresh-bytesmut", &p.allocator, p.size, p.threads) {
                let _ = writeln!(
                    s,
                    "| {} {}: at most 1.0x a fresh BytesMut of the same build (issue 15) | {} | {:.1} ns vs {:.1} ns: ratio {:.2} | {} |",
                    w.to_uppercase(), human_size(p.size), p.allocator, p.ns, f.ns, p.ns / f.ns, verdict(p.ns <= f.ns)
                );
            }
            if let Some(f) = find(w, "tls-unsafecell", &p.allocator, p.size, p.threads) {
                let _ = writeln!(
                    s,
                    "| {} {}: at most 1.5x the `UnsafeCell` thread-local stack (issue 15) | {} | {:.1} ns vs {:.1} ns: ratio {:.2} | {} |",
                    w.to_uppercase(), human_size(p.size), p.allocator, p.ns, f.ns, p.ns / f.ns, verdict(p.ns <= 1.5 * f.ns)
                );
            }
        }
    }
    let allocators: Vec<String> = rows.iter().fold(Vec::new(), |mut a, r| {
        if !a.contains(&r.allocator) {
            a.push(r.allocator.clone());
        }
        a
    });
    for a in &allocators {
        let w2: Vec<&Row> = rows
            .iter()
            .filter(|r| r.workload == "w2" && &r.allocator == a)
            .filter(ours)
            .collect();
        if let (Some(lo), Some(hi)) = (
            w2.iter().min_by_key(|r| r.threads),
            w2.iter().max_by_key(|r| r.threads),
        ) {
            if hi.threads > lo.threads {
                let ratio = hi.ns / lo.ns;
                let _ = writeln!(
                    s,
                    "| W2: per-thread ns at T={} within 1.2x of T={} | {a} | {:.1} ns vs {:.1} ns: ratio {:.2} | {} |",
                    hi.threads, lo.threads, hi.ns, lo.ns, ratio, verdict(ratio <= 1.2)
                );
            }
            for p in &w2 {
                let beaten: Vec<String> = rows
                    .iter()
                    .filter(|r| {
                        r.workload == "w2"
                            && r.threads == p.threads
                            && r.contender != THIS_PROJECT
                            && r.ns < p.ns
                    })
                    .map(|r| format!("{} ({}) {:.1} ns", r.contender, r.allocator, r.ns))
                    .collect();
                let _ =
                    writeln!(
                    s,
                    "| W2 T={}: below every other contender | {a} | {:.1} ns; faster: {} | {} |",
                    p.threads,
                    p.ns,
                    if beaten.is_empty() { "none".to_string() } else { beaten.join(", ") },
                    verdict(beaten.is_empty())
                );
            }
        }
        for (w, what) in [("w3", "cost per message"), ("w4", "throughput")] {
            for p in rows
                .iter()
                .filter(|r| r.workload == w && &r.allocator == a)
                .filter(ours)
            {
                let best = rows
                    .iter()
                    .filter(|r| {
                        r.workload == w && r.threads == p.threads && r.contender != THIS_PROJECT
                    })
                    .min_by(|x, y| x.ns.total_cmp(&y.ns));
                if let Some(b) = best {
                    let growth = p
                        .extra("rss_growth_mib")
                        .map_or(String::new(), |g| format!("; RSS growth {g:.1} MiB"));
                    let _ = writeln!(
                        s,
                        "| {} T={}: {what} at least as good as the best contender ({} {}) | {a} | {:.1} ns vs {:.1} ns: ratio {:.2}{growth} | {} |",
                        w.to_uppercase(), p.threads, b.contender, b.allocator, p.ns, b.ns, p.ns / b.ns, verdict(p.ns <= b.ns)
                    );
                }
            }
        }
        let w6 = |label: &str| {
            rows.iter()
                .find(|r| r.workload == "w6" && r.contender == "pool-tokio" && r.allocator == label)
        };
        if let (Some(off), Some(on)) = (w6(a), w6(&format!("{a}+tracing"))) {
            let ratio = on.ns / off.ns;
            let _ = writeln!(
                s,
                "| W6: pool-tokio with `tracing` on, no subscriber, within 3% of off | {a} | {:.1} ns vs {:.1} ns: ratio {ratio:.3} | {} |",
                on.ns, off.ns, verdict(ratio <= 1.03)
            );
            if let Some(sub) = w6(&format!("{a}+tracing+rejecting-subscriber")) {
                let _ = writeln!(
                    s,
                    "| W6: pool-tokio with `tracing` on and a subscriber rejecting `trace` (reported) | {a} | {:.1} ns vs {:.1} ns off: ratio {:.3} | reported |",
                    sub.ns, off.ns, sub.ns / off.ns
                );
            }
        }
        let w5_ours = |r: &&Row| r.contender == THIS_PROJECT || r.contender == "pool-core-burst";
        for p in rows
            .iter()
            .filter(|r| r.workload == "w5" && &r.allocator == a)
            .filter(w5_ours)
        {
            let best = rows
                .iter()
                .filter(|r| r.workload == "w5" && POOL_CRATES.contains(&r.contender.as_str()))
                .min_by(|x, y| x.ns.total_cmp(&y.ns));
            if let Some(b) = best {
                let _ = writeln!(
                    s,
                    "| W5 ({}): second burst no slower than the fastest pool crate ({} {}) | {a} | {:.1} ns vs {:.1} ns per buffer: ratio {:.2} | {} |",
                    p.contender, b.contender, b.allocator, p.ns, b.ns, p.ns / b.ns, verdict(p.ns <= b.ns)
                );
            }
            let fig = |k: &str| {
                p.extra(k)
                    .map_or("-".to_string(), |v| format!("{v:.1} MiB"))
            };
            let _ = writeln!(
                s,
                "| W5 ({}): after the idle second, retained memory at the floor | {a} | pool retains {} after the idle second, {} after trim(); RSS {} after the burst, {} after the idle second, {} after trim(), {} after malloc_trim(0) | {} |",
                p.contender,
                fig("pool_retained_idle_mib"),
                fig("pool_retained_trim_mib"),
                fig("rss_after_mib"),
                fig("rss_idle_mib"),
                fig("rss_trim_mib"),
                fig("rss_malloc_trim_mib"),
                verdict(p.extra("pool_retained_idle_mib").is_some_and(|m| m < 1.0))
            );
        }
    }
    s
}

fn csv(rows: &[Row]) -> String {
    let mut s = String::from(
        "workload,contender,allocator,size,threads,ns_per_op,mops,ratio_to_pool_core,peak_rss_mib,extra\n",
    );
    for r in rows {
        let ratio = this_project(rows, r).map_or(String::new(), |p| format!("{:.3}", r.ns / p.ns));
        let extra: Vec<String> = r.extra.iter().map(|(k, v)| format!("{k}={v:.2}")).collect();
        let _ = writeln!(
            s,
            "{},{},{},{},{},{:.2},{:.3},{},{:.1},{}",
            r.workload,
            r.contender,
            r.allocator,
            r.size,
            r.threads,
            r.ns,
            r.mops,
            ratio,
            mib(r.peak_rss),
            extra.join(";")
        );
    }
    s
}

fn plot_w2(rows: &[Row], path: &Path) -> Result<(), String> {
    use plotters::prelude::*;
    let mut series: BTreeMap<(usize, String, String), Vec<(f64, f64)>> = BTreeMap::new();
    let order = |c: &str| {
        CONTENDERS
            .iter()
            .position(|x| *x == c)
            .unwrap_or(usize::MAX)
    };
    for r in rows
        .iter()
        .filter(|r| r.workload == "w2" && r.ns.is_finite())
    {
        series
            .entry((
                order(&r.contender),
                r.contender.clone(),
                r.allocator.clone(),
            ))
            .or_default()
            .push((r.threads as f64, r.ns));
    }
    if series.is_empty() {
        return Ok(());
    }
    let max_t = rows
        .iter()
        .filter(|r| r.workload == "w2")
        .map(|r| r.threads)
        .max()
        .unwrap_or(2) as f64;
    let (lo, hi) = series
        .values()
        .flatten()
        .fold((f64::MAX, 0f64), |(lo, hi), &(_, y)| (lo.min(y), hi.max(y)));
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "W2: per-thread ns per 4 KiB checkout+write+return",
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            (1f64..max_t.max(2.0)).log_scale(),
            ((lo * 0.8)..(hi * 1.25)).log_scale(),
        )
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("threads")
        .y_desc("ns/op per thread (log)")
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, ((_, contender, allocator), mut pts)) in series.into_iter().enumerate() {
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let color = Palette99::pick(i).to_rgba();
        let width = if contender == THIS_PROJECT { 3 } else { 1 };
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(width)))
            .map_err(|e| e.to_string())?
            .label(format!("{contender} ({allocator})"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("--child") {
        return child(&argv[1..]);
    }
    if argv.first().map(String::as_str) == Some("--profile") {
        return profile(&argv[1..]);
    }
    let args = match parse_args(&argv) {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!("usage: compare [--quick] [--threads 1,2,4] [--workloads {}] [--sizes 256,4k,64k,1m] [--contenders {}] [--bins PATH,...] [--tracing-bin PATH] [--out DIR] [--rounds N] [--instructions]", WORKLOADS.join(","), CONTENDERS.join(","));
            return ExitCode::from(2);
        }
    };
    let me = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: cannot find this executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut bins = vec![me];
    bins.extend(args.bins.iter().cloned());
    if args.instructions {
        return instructions(&args, &bins);
    }
    let started = Instant::now();
    let mut rows: Vec<Row> = Vec::new();
    let mut report = format!(
        "## compare{} (allocator builds: {})\n",
        if args.quick { " --quick" } else { "" },
        bins.len()
    );
    let mut failures = 0;
    for w in &args.workloads {
        let points: Vec<(usize, usize)> = match w.as_str() {
            "w1" | "w1f" => args.sizes.iter().map(|&s| (s, 1)).collect(),
            "w2" | "w3" | "w4" => args.threads.iter().map(|&t| (SMALL, t)).collect(),
            "w6" => vec![(SMALL, 1)],
            _ => vec![(BURST_SIZE, 1)],
        };
        // W6: pool-tokio (and pool-core as the reference) in this build
        // (pool-tokio's `tracing` feature off) and in the `--tracing-bin`
        // build, there without and with a subscriber that rejects `trace`.
        let runs: Vec<(&Path, &str, &str)> = if w == "w6" {
            let mut v = vec![(bins[0].as_path(), "w6", "")];
            if let Some(t) = &args.tracing_bin {
                v.push((t.as_path(), "w6", ""));
                v.push((t.as_path(), "w6s", "+rejecting-subscriber"));
            } else {
                eprintln!("note: W6 without --tracing-bin measures only the build without tracing");
            }
            v
        } else {
            bins.iter().map(|b| (b.as_path(), w.as_str(), "")).collect()
        };
        for &(size, threads) in &points {
            // Every round runs each contender (and build) once, in turn, so
            // that a disturbed moment hits one child, not one contender;
            // the row kept is the median child by ns/op.
            let mut per_point: Vec<Vec<Row>> = Vec::new();
            for _ in 0..args.rounds {
                let mut i = 0;
                for c in &args.contenders {
                    if c == "pool-core-burst" && w != "w5" && !args.contenders_given {
                        continue; // a W5 configuration; run elsewhere only on request
                    }
                    if w == "w6" && !args.contenders_given && c != THIS_PROJECT && c != "pool-tokio"
                    {
                        continue; // the tracing cost is pool-tokio's
                    }
                    for &(bin, child_w, suffix) in &runs {
                        if per_point.len() <= i {
                            per_point.push(Vec::new());
                        }
                        match run_child(bin, child_w, c, size, threads, args.quick) {
                            Ok(mut r) => {
                                r.workload = w.clone();
                                r.allocator.push_str(suffix);
                                per_point[i].push(r);
                            }
                            Err(e) => {
                                failures += 1;
                                eprintln!("error: {e}");
                            }
                        }
                        i += 1;
                    }
                }
            }
            for mut children in per_point {
                children.sort_by(|a, b| a.ns.total_cmp(&b.ns));
                if !children.is_empty() {
                    let mid = children.len() / 2;
                    rows.push(children.swap_remove(mid));
                }
            }
        }
        let t = table(&rows, w);
        print!("{t}");
        report.push_str(&t);
    }
    let t = targets(&rows);
    print!("{t}");
    report.push_str(&t);
    let _ = writeln!(
        report,
        "\nWall time of the run: {:.0} s.",
        started.elapsed().as_secs_f64()
    );
    println!(
        "\nWall time of the run: {:.0} s.",
        started.elapsed().as_secs_f64()
    );
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        eprintln!("error: cannot create {}: {e}", args.out.display());
        return ExitCode::FAILURE;
    }
    for (name, body) in [("results.csv", csv(&rows)), ("report.md", report)] {
        let p = args.out.join(name);
        match std::fs::write(&p, body) {
            Ok(()) => eprintln!("wrote {}", p.display()),
            Err(e) => eprintln!("error: cannot write {}: {e}", p.display()),
        }
    }
    let svg = args.out.join("w2-scaling.svg");
    match plot_w2(&rows, &svg) {
        Ok(()) if svg.exists() => eprintln!("wrote {}", svg.display()),
        Ok(()) => {}
        Err(e) => eprintln!("error: cannot plot W2: {e}"),
    }
    if failures > 0 {
        eprintln!("{failures} point(s) failed");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
