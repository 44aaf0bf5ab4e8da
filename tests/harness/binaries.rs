//! Locating (and building when needed) the peer executables and the
//! directories the harness writes to.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};
use std::{env, fs};

/// The workspace root (the directory holding the root `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives inside the workspace")
        .to_path_buf()
}

/// Cargo's target directory: `CARGO_TARGET_TMPDIR`'s parent or
/// `CARGO_TARGET_DIR` when set, else derived from the running test
/// executable (`<target>/<profile>/deps/<exe>`), else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    let tmpdir =
        env::var_os("CARGO_TARGET_TMPDIR").or(option_env!("CARGO_TARGET_TMPDIR").map(Into::into));
    if let Some(parent) = tmpdir.as_deref().and_then(|t| Path::new(t).parent()) {
        return parent.to_path_buf();
    }
    if let Some(dir) = env::var_os("CARGO_TARGET_DIR") {
        return workspace_root().join(dir);
    }
    if let Some(profile_dir) = exe_profile_dir() {
        if let Some(target) = profile_dir.parent() {
            return target.to_path_buf();
        }
    }
    workspace_root().join("target")
}

/// `<target>/<profile>` when the current executable is a cargo test binary
/// in `<target>/<profile>/deps/`.
fn exe_profile_dir() -> Option<PathBuf> {
    let exe = env::current_exe().ok()?;
    let deps = exe.parent()?;
    if deps.file_name()? != "deps" {
        return None;
    }
    deps.parent().map(Path::to_path_buf)
}

/// A per-process scratch directory under `<target>/tmp/gossamer-e2e/` for
/// peer logs; created on first use.
///
/// # Panics
/// If the directory cannot be created.
pub fn test_temp_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = env::current_exe().ok();
        let stem = exe
            .as_deref()
            .and_then(Path::file_stem)
            .and_then(|s| s.to_str())
            .unwrap_or("test")
            .to_string();
        let dir = target_dir()
            .join("tmp")
            .join("gossamer-e2e")
            .join(format!("{stem}-{}", std::process::id()));
        fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create test temp dir {}: {e}", dir.display()));
        dir
    })
}

/// The Go memberlist peer (`tests/interop/peer`), built with `go build`
/// once per test process into `<target>/interop/gossamer-interop-peer`.
///
/// Each process builds into a private temporary file and renames it into
/// place, so parallel test binaries never observe a half-written file; Go's
/// build cache makes the repeated builds cheap.
///
/// # Panics
/// If `go` is not on `PATH` or the build fails: interop tests must fail
/// loudly, never skip.
pub fn go_peer_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_go("tests/interop/peer", "gossamer-interop-peer"))
        .clone()
}

/// The Go NetworkDB peer (`tests/interop/networkdb-peer`: a real libnetwork
/// `networkdb` node from the pinned moby module), built like
/// [`go_peer_binary`] into `<target>/interop/gossamer-networkdb-peer`.
///
/// # Panics
/// If `go` is not on `PATH` or the build fails: interop tests must fail
/// loudly, never skip.
pub fn networkdb_peer_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_go("tests/interop/networkdb-peer", "gossamer-networkdb-peer"))
        .clone()
}

/// The Go golden tool (`tests/interop/golden`: memberlist's msgpack codec
/// and encryption layouts), built like [`go_peer_binary`] into
/// `<target>/interop/gossamer-golden`.
///
/// # Panics
/// If `go` is not on `PATH` or the build fails: golden tests must fail
/// loudly, never skip.
pub fn golden_tool_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_go("tests/interop/golden", "gossamer-golden"))
        .clone()
}

/// The Go NetworkDB golden tool (`tests/interop/networkdb-golden`: the
/// pinned libnetwork `networkdb` message types), built like
/// [`go_peer_binary`] into `<target>/interop/gossamer-networkdb-golden`.
///
/// # Panics
/// If `go` is not on `PATH` or the build fails: golden tests must fail
/// loudly, never skip.
pub fn networkdb_golden_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        build_go(
            "tests/interop/networkdb-golden",
            "gossamer-networkdb-golden",
        )
    })
    .clone()
}

/// Builds the Go program in `<workspace>/<dir>` into `<target>/interop/<name>`.
fn build_go(dir: &str, name: &str) -> PathBuf {
    let src = workspace_root().join(dir);
    let out_dir = target_dir().join("interop");
    fs::create_dir_all(&out_dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", out_dir.display()));
    let bin = out_dir.join(name);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tmp = out_dir.join(format!(".{name}.{}.{nanos}", std::process::id()));
    let output = Command::new("go")
        .args(["build", "-buildvcs=false", "-o"])
        .arg(&tmp)
        .arg(".")
        .current_dir(&src)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `go build` for {name} in {}: {e}. \
                 Install Go 1.26 or newer and put `go` on PATH; interop tests need it.",
                src.display()
            )
        });
    if !output.status.success() {
        let _ = fs::remove_file(&tmp);
        panic!(
            "`go build` of {name} in {} failed ({}):\n{}{}",
            src.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    fs::rename(&tmp, &bin)
        .unwrap_or_else(|e| panic!("cannot move {} to {}: {e}", tmp.display(), bin.display()));
    bin
}

/// The `gossamer-sidecar` binary of the same cargo profile as the running
/// test (next to the test executable's `deps/` directory).
///
/// Cargo builds a dependency's library but not its binaries for another
/// package's tests, so when the binary is missing or older than the sidecar
/// sources this runs `cargo build -p gossamer-sidecar --bin
/// gossamer-sidecar` with the matching profile, once per process.
///
/// # Panics
/// If the build fails or the binary is still missing afterwards.
pub fn sidecar_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = workspace_root();
        build_workspace_binary(
            "gossamer-sidecar",
            &[
                root.join("sidecar/src"),
                root.join("sidecar/core"),
                root.join("proto"),
                root.join("sidecar/build.rs"),
                root.join("sidecar/Cargo.toml"),
            ],
        )
    })
    .clone()
}

/// The sidecar as the images ship it: a release build linked statically
/// (`-C target-feature=+crt-static`, for the host's triple, in
/// `<target>/<triple>/release/`), built once per process.
///
/// # Panics
/// If `rustc` or the build fails.
pub fn static_release_sidecar_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let rustc = Command::new("rustc")
            .arg("-vV")
            .output()
            .unwrap_or_else(|e| panic!("cannot run rustc -vV: {e}"));
        let info = String::from_utf8_lossy(&rustc.stdout);
        let triple = info
            .lines()
            .find_map(|l| l.strip_prefix("host: "))
            .unwrap_or_else(|| panic!("rustc -vV names no host triple:\n{info}"))
            .to_string();
        let target = target_dir();
        let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let flags = format!(
            "{} -C target-feature=+crt-static",
            env::var("RUSTFLAGS").unwrap_or_default()
        );
        let status = Command::new(&cargo)
            .args(["build", "--release", "-p", "gossamer-sidecar", "--bin"])
            .arg("gossamer-sidecar")
            .args(["--target", &triple, "--target-dir"])
            .arg(&target)
            .env("RUSTFLAGS", flags.trim())
            .current_dir(workspace_root())
            .status()
            .unwrap_or_else(|e| panic!("cannot run {cargo:?}: {e}"));
        assert!(
            status.success(),
            "the static release sidecar build failed ({status})"
        );
        let bin = target.join(&triple).join("release/gossamer-sidecar");
        assert!(bin.is_file(), "{} was not built", bin.display());
        bin
    })
    .clone()
}

/// The `gossamer-operator` binary of the same cargo profile as the running
/// test, built as [`sidecar_binary`] builds the sidecar.
///
/// # Panics
/// If the build fails or the binary is still missing afterwards.
pub fn operator_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        build_workspace_binary("gossamer-operator", &[workspace_root().join("operator")])
    })
    .clone()
}

/// Builds binary `name` of the workspace package of the same name when it
/// is missing or older than `sources` (or the workspace manifest and lock).
fn build_workspace_binary(name: &str, sources: &[PathBuf]) -> PathBuf {
    let profile_dir = exe_profile_dir().unwrap_or_else(|| target_dir().join("debug"));
    let bin = profile_dir.join(name);
    let root = workspace_root();
    // What the binary is built from; tests, benches and fuzz targets of the
    // crate count too (cargo would not relink for them, so a rebuild is
    // merely quick).
    let mut all = sources.to_vec();
    all.push(root.join("Cargo.toml"));
    all.push(root.join("Cargo.lock"));
    let newest_source = all.iter().filter_map(|p| newest_mtime(p)).max();
    let built = fs::metadata(&bin).and_then(|m| m.modified()).ok();
    let fresh = matches!((built, newest_source), (Some(b), Some(s)) if b >= s);
    if fresh {
        return bin;
    }
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.args(["build", "-p", name, "--bin", name])
        .current_dir(&root);
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(other) => {
            cmd.args(["--profile", other]);
        }
    }
    if let Some(target) = profile_dir.parent() {
        cmd.arg("--target-dir").arg(target);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cargo:?} to build {name}: {e}"));
    assert!(
        status.success(),
        "building {name} failed ({status}); run `cargo build -p {name}` to see why"
    );
    assert!(
        bin.is_file(),
        "cargo built {name} but {} does not exist",
        bin.display()
    );
    bin
}

/// The newest modification time of a file or of any file below a directory
/// (skipping build output directories); `None` if nothing exists.
fn newest_mtime(path: &Path) -> Option<SystemTime> {
    let meta = fs::metadata(path).ok()?;
    if meta.is_file() {
        return meta.modified().ok();
    }
    let mut newest = None;
    for entry in fs::read_dir(path).ok()?.flatten() {
        let p = entry.path();
        let skip = matches!(
            p.file_name().and_then(|n| n.to_str()),
            Some("target" | "corpus" | "artifacts")
        );
        if !skip {
            newest = newest.max(newest_mtime(&p));
        }
    }
    newest
}
