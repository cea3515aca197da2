//! Network section: ports, listen addresses, connections, worker threads,
//! idle timeout and the admin port (`-p -U -l -c -t`, `--idle-timeout`,
//! `--admin-port` and their config keys).

use std::net::{IpAddr, ToSocketAddrs};

use clap::Args;
use serde::Deserialize;

use super::value::{pick_or, ConfigError, Origin};

/// TCP port.
pub const DEFAULT_PORT: u16 = 11211;
/// UDP port (0 disables UDP).
pub const DEFAULT_UDP_PORT: u16 = 11211;
/// Listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1";
/// Most simultaneous TCP connections.
pub const DEFAULT_CONN_LIMIT: u32 = 1024;
/// Worker threads (memcached's default).
pub const DEFAULT_THREADS: u32 = 4;
/// Admin endpoint port (0 disables).
pub const DEFAULT_ADMIN_PORT: u16 = 9999;
/// Idle timeout in seconds (0 = never).
pub const DEFAULT_IDLE_TIMEOUT_SECS: u32 = 0;
/// Most worker threads accepted.
pub const MAX_THREADS: u32 = 256;

/// The network flags; each is also a config key of the same name.
#[derive(Args, Deserialize, Debug, Default, Clone)]
#[command(next_help_heading = "Network")]
#[serde(rename_all = "kebab-case")]
pub struct NetArgs {
    /// TCP port to listen on [default: 11211]
    #[arg(short = 'p', long = "port", value_name = "PORT")]
    pub port: Option<u16>,
    /// UDP port to listen on, 0 disables UDP [default: 11211]
    #[arg(short = 'U', long = "udp-port", value_name = "PORT")]
    pub udp_port: Option<u16>,
    /// Interface(s) to listen on: comma-separated addresses [default: 127.0.0.1]
    #[arg(short = 'l', long = "listen", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Most simultaneous connections [default: 1024]
    #[arg(short = 'c', long = "conn-limit", value_name = "N")]
    pub conn_limit: Option<u32>,
    /// Worker threads [default: 4]
    #[arg(short = 't', long = "threads", value_name = "N")]
    pub threads: Option<u32>,
    /// Close connections idle for this many seconds, 0 = never [default: 0]
    #[arg(long = "idle-timeout", value_name = "SECS")]
    pub idle_timeout: Option<u32>,
    /// Admin endpoint port on loopback, 0 disables [default: 9999]
    #[arg(long = "admin-port", value_name = "PORT")]
    pub admin_port: Option<u16>,
}

/// The effective network settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetSettings {
    /// TCP port.
    pub port: u16,
    /// UDP port; 0 = no UDP.
    pub udp_port: u16,
    /// Addresses to bind (TCP and UDP).
    pub listen: Vec<IpAddr>,
    /// Most simultaneous TCP connections.
    pub conn_limit: u32,
    /// Worker threads.
    pub threads: u32,
    /// Idle timeout in seconds; 0 = never.
    pub idle_timeout_secs: u32,
    /// Admin port; 0 = disabled.
    pub admin_port: u16,
    /// `--admin-port` (or its key) was given: failing to bind it is fatal.
    pub admin_port_explicit: bool,
}

/// Merges the network flags over their keys over the defaults and checks them.
pub fn resolve(cli: &NetArgs, file: &NetArgs) -> Result<NetSettings, ConfigError> {
    let port = pick_or(cli.port, file.port, "port", DEFAULT_PORT);
    if port.value == 0 {
        return port.origin.fail("the TCP port must be between 1 and 65535");
    }
    let udp_port = pick_or(cli.udp_port, file.udp_port, "udp-port", DEFAULT_UDP_PORT);
    let listen = pick_or(
        cli.listen.clone(),
        file.listen.clone(),
        "listen",
        DEFAULT_LISTEN.to_string(),
    );
    let listen_ips = parse_listen(&listen.value, listen.origin)?;
    let conn = pick_or(
        cli.conn_limit,
        file.conn_limit,
        "conn-limit",
        DEFAULT_CONN_LIMIT,
    );
    if conn.value == 0 {
        return conn.origin.fail("the connection limit must be at least 1");
    }
    let threads = pick_or(cli.threads, file.threads, "threads", DEFAULT_THREADS);
    if threads.value == 0 || threads.value > MAX_THREADS {
        return threads
            .origin
            .fail(format!("threads must be between 1 and {MAX_THREADS}"));
    }
    let admin = pick_or(
        cli.admin_port,
        file.admin_port,
        "admin-port",
        DEFAULT_ADMIN_PORT,
    );
    if admin.value != 0 && admin.value == port.value {
        return admin.origin.fail(format!(
            "the admin port must differ from the TCP port {}",
            port.value
        ));
    }
    let idle = pick_or(
        cli.idle_timeout,
        file.idle_timeout,
        "idle-timeout",
        DEFAULT_IDLE_TIMEOUT_SECS,
    );
    Ok(NetSettings {
        port: port.value,
        udp_port: udp_port.value,
        listen: listen_ips,
        conn_limit: conn.value,
        threads: threads.value,
        idle_timeout_secs: idle.value,
        admin_port: admin.value,
        admin_port_explicit: admin.origin.given(),
    })
}

/// Resolves a comma-separated listen list (IP literals, `[v6]`, or names).
fn parse_listen(text: &str, origin: Origin) -> Result<Vec<IpAddr>, ConfigError> {
    let mut out = Vec::new();
    for part in text.split(',') {
        let p = part.trim();
        let p = p
            .strip_prefix('[')
            .and_then(|x| x.strip_suffix(']'))
            .unwrap_or(p);
        if p.is_empty() {
            return origin.fail(format!("empty address in '{text}'"));
        }
        if let Ok(ip) = p.parse::<IpAddr>() {
            out.push(ip);
            continue;
        }
        match (p, 0u16).to_socket_addrs() {
            Ok(addrs) => {
                let before = out.len();
                for a in addrs {
                    if !out.contains(&a.ip()) {
                        out.push(a.ip());
                    }
                }
                if out.len() == before {
                    return origin.fail(format!("'{p}' resolves to no address"));
                }
            }
            Err(e) => return origin.fail(format!("cannot resolve '{p}': {e}")),
        }
    }
    let mut seen = Vec::new();
    for ip in &out {
        if seen.contains(ip) {
            return origin.fail(format!("address {ip} given twice"));
        }
        seen.push(*ip);
    }
    Ok(out)
}
