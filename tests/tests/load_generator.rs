//! The `petrel-load` generator against the server under test: bounded runs over TCP and UDP
//! complete, count every request, and see no errors or misses on a preloaded key space.

use petrel_tests::server::Target;
use std::collections::HashMap;
use std::process::Command;

fn run_load(args: &[String]) -> HashMap<String, f64> {
    let out = Command::new(env!("CARGO_BIN_EXE_petrel-load"))
        .args(args)
        .output()
        .expect("run petrel-load");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "petrel-load {args:?} failed: {}\n{text}",
        out.status
    );
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line:\n{text}"));
    line.split(' ')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse().expect("number")))
        .collect()
}

#[test]
fn petrel_load_tcp_and_udp() {
    let Some(target) = Target::from_env() else {
        return;
    };
    let server = target.start();
    let common = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "--keys",
            "2000",
            "--key-size",
            "16",
            "--value-size",
            "100",
            "--get-ratio",
            "0.9",
            "--requests",
            "20000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let tcp = format!("127.0.0.1:{}", server.tcp_port);
    let r = run_load(&common(&[
        "--server",
        &tcp,
        "--connections",
        "8",
        "--pipeline",
        "4",
        "--threads",
        "2",
        "--preload",
    ]));
    assert_eq!(r["requests"], 20000.0);
    assert_eq!(r["errors"], 0.0);
    assert_eq!(r["misses"], 0.0, "every key was preloaded");
    assert!(r["ops_per_sec"] > 0.0 && r["p50_us"] > 0.0 && r["p50_us"] <= r["p99_us"]);
    assert!(r["p99_us"] <= r["p999_us"] && r["p999_us"] <= r["max_us"]);
    let udp = format!("127.0.0.1:{}", server.udp_port);
    let r = run_load(&common(&[
        "--server",
        &udp,
        "--udp",
        "--connections",
        "4",
        "--pipeline",
        "2",
    ]));
    assert_eq!(r["errors"], 0.0);
    assert_eq!(r["misses"], 0.0);
    assert!(r["requests"] + r["lost"] >= 20000.0);
    assert!(
        r["lost"] <= 200.0,
        "lost {} of 20000 UDP requests on loopback",
        r["lost"]
    );
    // open loop with Zipf keys: every scheduled request is sent and answered, over TCP and UDP
    let open = |server: &str, udp: bool| {
        let mut a = common(&["--server", server, "--connections", "4", "--threads", "2"]);
        a.extend(
            ["--rate", "5000", "--zipf", "0.99"]
                .iter()
                .map(|s| s.to_string()),
        );
        if udp {
            a.push("--udp".to_string());
        }
        // --requests 20000 from `common` bounds the run: 4 s at 5000/s
        run_load(&a)
    };
    let r = open(&tcp, false);
    assert_eq!(r["offered_per_sec"], 5000.0);
    assert_eq!(r["requests"], 20000.0, "{r:?}");
    assert_eq!(r["lost"], 0.0);
    assert_eq!(r["errors"], 0.0);
    assert_eq!(r["misses"], 0.0, "every key was preloaded");
    assert!(r["late"] <= r["requests"] && r["p50_us"] <= r["p999_us"]);
    let r = open(&udp, true);
    assert_eq!(r["errors"], 0.0);
    assert_eq!(r["requests"] + r["lost"], 20000.0, "{r:?}");
    assert!(
        r["lost"] <= 200.0,
        "lost {} of 20000 UDP requests",
        r["lost"]
    );
    // an unbounded run is refused
    let out = Command::new(env!("CARGO_BIN_EXE_petrel-load"))
        .args(["--server", &tcp])
        .output()
        .expect("run petrel-load");
    assert_eq!(out.status.code(), Some(64));
    // so are a rate of zero and an out-of-range skew
    for bad in [["--rate", "0"], ["--zipf", "11"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_petrel-load"))
            .args(["--server", &tcp, "--requests", "1"])
            .args(bad)
            .output()
            .expect("run petrel-load");
        assert_eq!(out.status.code(), Some(64), "{bad:?}");
    }
}
