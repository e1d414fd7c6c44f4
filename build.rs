//! Names the build in `hitme --version`: the crate's version and, when built from a git
//! checkout, the commit (with `-dirty` when the tree had changes). A build outside git (a
//! source tarball) says the version alone; `HITME_COMMIT` overrides the commit (packagers).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=HITME_COMMIT");
    // The commit moves with HEAD and with the branch HEAD names.
    for path in [".git/HEAD", ".git/index"] {
        println!("cargo:rerun-if-changed={path}");
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        println!("cargo:rerun-if-changed=.git/{branch}");
    }
    let commit = std::env::var("HITME_COMMIT").ok().or_else(|| {
        let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
        let dirty =
            git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
        Some(if dirty {
            format!("{commit}-dirty")
        } else {
            commit
        })
    });
    let version = env!("CARGO_PKG_VERSION");
    let long = match commit {
        Some(commit) if !commit.is_empty() => format!("{version} (commit {commit})"),
        _ => version.to_string(),
    };
    println!("cargo:rustc-env=HITME_VERSION={long}");
}

/// The trimmed output of `git ARGS`, if git ran and succeeded.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
