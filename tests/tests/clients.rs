//! Independent client libraries against the server: Python's pymemcache (a script driven from
//! here) and the `memcache` crate, both over TCP with the text protocol.

use petrel_tests::server::{workspace_root, Target};
use petrel_tests::tcp::Conn;
use std::collections::HashMap;
use std::process::Command;

#[test]
fn pymemcache_client() {
    let Some(target) = Target::from_env() else {
        return;
    };
    let server = target.start();
    let script = workspace_root().join("tests/py/pymemcache_check.py");
    let out = Command::new("timeout")
        .arg("120")
        .arg("python3")
        .arg(&script)
        .arg("127.0.0.1")
        .arg(server.tcp_port.to_string())
        .output()
        .expect("run python3 (installed by scripts/setup)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} failed ({}):\n{text}\nserver log:\n{}",
        script.display(),
        out.status,
        server.log()
    );
    assert!(text.contains("pymemcache: all checks passed"), "{text}");
}

#[test]
fn memcache_crate_client() {
    let Some(target) = Target::from_env() else {
        return;
    };
    let server = target.start();
    let url = format!("memcache://127.0.0.1:{}?protocol=ascii", server.tcp_port);
    let c = memcache::Client::connect(url.as_str()).expect("connect");
    c.set("a", "hello", 0).expect("set");
    assert_eq!(
        c.get::<String>("a").expect("get"),
        Some("hello".to_string())
    );
    assert_eq!(c.get::<String>("missing").expect("get"), None);
    c.add("b", "bee", 0).expect("add");
    // (the crate reports NOT_STORED of an ascii add as Ok; check the value instead)
    let _ = c.add("b", "again", 0);
    assert_eq!(c.get::<String>("b").expect("get"), Some("bee".to_string()));
    c.replace("b", "BEE", 0).expect("replace");
    c.append("b", "!").expect("append");
    c.prepend("b", "<").expect("prepend");
    assert_eq!(
        c.get::<String>("b").expect("get"),
        Some("<BEE!".to_string())
    );
    // gets returns the CAS; cas succeeds once
    let (_v, _f, cas): (String, u32, Option<u64>) = c.get("a").expect("get").expect("hit");
    let cas = cas.expect("the crate asks with gets");
    assert!(c.cas("a", "v2", 0, cas).expect("cas"));
    assert!(!c.cas("a", "v3", 0, cas).expect("cas"));
    let many: HashMap<String, String> = c.gets(&["a", "b", "missing"]).expect("gets");
    assert_eq!(many.len(), 2);
    assert_eq!(many["a"], "v2");
    assert_eq!(many["b"], "<BEE!");
    c.set("n", 41u64, 0).expect("set");
    assert_eq!(c.increment("n", 1).expect("incr"), 42);
    assert_eq!(c.decrement("n", 50).expect("decr"), 0);
    assert!(c.touch("a", 1000).expect("touch"));
    assert!(!c.touch("missing", 1000).expect("touch"));
    assert!(c.delete("a").expect("delete"));
    assert!(!c.delete("a").expect("delete"));
    let version = c.version().expect("version");
    assert_eq!(version.len(), 1);
    let mut raw = Conn::connect(server.tcp_addr());
    raw.send(b"version\r\n");
    let line = String::from_utf8(raw.read_line()).expect("ascii");
    assert_eq!(
        format!("VERSION {}\r\n", version[0].1),
        line,
        "the crate reports the server's version"
    );
    let stats = c.stats().expect("stats");
    // (the crate's ascii mode returns the stats map empty; stats are checked by raw TCP tests)
    assert_eq!(stats.len(), 1);
    c.flush().expect("flush_all");
    assert_eq!(c.get::<String>("b").expect("get"), None);
}
