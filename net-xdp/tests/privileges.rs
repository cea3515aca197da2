//! Without the privileges AF_XDP needs, the front end says so and how to
//! fix it, and leaves nothing attached. Runs the `xdp_serve` example (built
//! by `cargo test`) with capabilities taken away. Needs root to create the
//! topology and to drop privileges; prints why and passes vacuously
//! otherwise.

mod common;

use common::*;
use std::path::PathBuf;
use std::process::Command;

fn xdp_serve() -> PathBuf {
    // target/<profile>/deps/privileges-HASH -> target/<profile>/examples/xdp_serve
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .and_then(|d| d.parent())
        .map(|p| p.join("examples/xdp_serve"))
        .unwrap()
}

#[test]
fn missing_privileges_are_reported_with_the_fix_and_leave_nothing_attached() {
    if !petrel_testkit::skip::require_root("builds a veth topology, then drops privileges") {
        return;
    }
    let bin = xdp_serve();
    assert!(bin.is_file(), "{} not built", bin.display());
    let topo = Topology::up(1);
    let bin = bin.to_string_lossy().into_owned();
    let cases: [(&str, Vec<&str>); 2] = [
        // Root without CAP_NET_RAW: the program loads, the socket is refused.
        ("capsh", vec!["--drop=cap_net_raw", "--", "-c"]),
        // An ordinary user: the map is refused.
        (
            "setpriv",
            vec![
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
            ],
        ),
    ];
    for (tool, args) in cases {
        let mut cmd = Command::new(tool);
        cmd.args(&args);
        let serve = [bin.as_str(), &topo.host_if, "21499", "generic", "1"];
        if tool == "capsh" {
            cmd.arg(serve.join(" "));
        } else {
            cmd.args(serve);
        }
        let out = cmd.output().expect("run xdp_serve");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{tool}: {stderr}");
        assert!(
            stderr.contains("AF_XDP needs root") && stderr.contains("CAP_NET_RAW"),
            "{tool}: {stderr}"
        );
        assert!(!topo.xdp_attached(), "{tool}: a program stayed attached");
    }
}
