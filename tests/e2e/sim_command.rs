//! `gossamer-sidecar sim` as a user runs it: the report it prints, the
//! files it writes, the same trace for the same seed, and clear errors for
//! bad arguments and for a run that outgrows its memory budget.

use std::path::Path;
use std::process::{Command, Output};

use gossamer_tests::{sidecar_binary, test_temp_dir};

fn sim(args: &[&str]) -> Output {
    Command::new(sidecar_binary())
        .arg("sim")
        .args(args)
        .output()
        .expect("the sidecar binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The `trace hash: ...` line of a report.
fn trace_hash(report: &str) -> String {
    report
        .lines()
        .find_map(|l| l.strip_prefix("trace hash: "))
        .unwrap_or_else(|| panic!("no trace hash in:\n{report}"))
        .to_string()
}

#[test]
fn propagate_prints_percentiles_and_writes_csv_svg_and_report() {
    let dir = test_temp_dir().join("sim-propagate");
    let out = sim(&[
        "--nodes",
        "200",
        "--scenario",
        "propagate",
        "--duration",
        "10",
        "--seed",
        "3",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let report = stdout(&out);
    assert!(out.status.success(), "{report}\n{}", stderr(&out));
    for want in [
        "scenario propagate | nodes 200",
        "50%:",
        "99%:",
        "100%:",
        "epidemic lower bound: ceil(log_4 200) = 4 rounds",
        "false positives:",
        "bytes per node per second:",
        "peak memory",
    ] {
        assert!(report.contains(want), "no {want:?} in:\n{report}");
    }
    // Every node learned the fact within the run.
    assert!(
        !report.contains("never") && !report.contains("not reached"),
        "some node never learned:\n{report}"
    );

    let csv = std::fs::read_to_string(dir.join("curve.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("seconds,simulated,serf_model,epidemic_bound")
    );
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|f| f.parse().unwrap()).collect())
        .collect();
    assert!(rows.len() > 10, "{} rows", rows.len());
    let last = rows.last().unwrap();
    assert_eq!(last[1], 1.0, "the curve ends with every node informed");
    assert!(
        rows.windows(2).all(|w| w[0][1] <= w[1][1]),
        "curve not monotone"
    );

    let svg = std::fs::read_to_string(dir.join("curve.svg")).unwrap();
    assert!(svg.starts_with("<svg"));
    assert!(svg.contains("Serf convergence model"));
    assert!(svg.contains("epidemic lower bound"));
    let txt = std::fs::read_to_string(dir.join("report.txt")).unwrap();
    assert_eq!(trace_hash(&txt), trace_hash(&report));
}

#[test]
fn the_same_seed_gives_the_same_trace_and_another_seed_another() {
    let run = |seed: &str| {
        let o = sim(&[
            "--nodes",
            "100",
            "--scenario",
            "fail",
            "--loss",
            "0.05",
            "--duration",
            "20",
            "--seed",
            seed,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        trace_hash(&stdout(&o))
    };
    let (a, b, c) = (run("11"), run("11"), run("12"));
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn bad_arguments_are_refused_with_the_value_and_what_to_do() {
    let o = sim(&["--loss", "1.5"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("--loss 1.5") && e.contains("0.0"), "{e}");

    let o = sim(&["--nodes", "1"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("at least 2"), "{}", stderr(&o));

    let o = sim(&["--scenario", "explode"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("explode"), "{}", stderr(&o));

    // An --out that cannot be a directory: the run's figures are printed,
    // then the error names the path.
    let file = test_temp_dir().join("sim-out-is-a-file");
    std::fs::write(&file, b"x").unwrap();
    let o = sim(&[
        "--nodes",
        "20",
        "--duration",
        "3",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(&*file.to_string_lossy()),
        "{}",
        stderr(&o)
    );
    assert!(Path::new(&file).is_file(), "the file was left alone");
}

#[test]
fn a_run_over_its_memory_budget_stops_with_the_figures() {
    let o = sim(&[
        "--nodes",
        "300",
        "--scenario",
        "partition",
        "--duration",
        "30",
        "--max-memory-mb",
        "1",
    ]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("over --max-memory-mb 1") && e.contains("square of --nodes"),
        "{e}"
    );
}
