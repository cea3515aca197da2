//! Network section: ports, listen addresses, connections, worker threads,
//! idle timeout and the admin port (`-p -U -l -c -t`, `--idle-timeout`,
//! `--admin-port` and their config keys).

use std::net::{IpAddr, ToSocketAddrs};

use clap::Args;
use serde::Deserialize;

use super::value::{one_or_many, pick, pick_or, ConfigError, Origin};
use petrel_core::proto::binary::BindingProtocol;

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
    /// Interface(s) to listen on: comma-separated, repeatable; HOST, HOST:PORT,
    /// [V6] or [V6]:PORT, * for all IPv4 interfaces (a PORT applies to TCP
    /// and UDP, as in memcached); with -Z, a notls: prefix serves that
    /// address without TLS [default: 127.0.0.1]
    #[arg(short = 'l', long = "listen", value_name = "ADDR", action = clap::ArgAction::Append)]
    #[serde(default, deserialize_with = "one_or_many")]
    pub listen: Vec<String>,
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
    /// Protocols connections speak, as memcached's -B: auto (told apart by
    /// the first byte), ascii or binary [default: auto]
    #[arg(short = 'B', long = "protocol", value_name = "auto|ascii|binary")]
    pub protocol: Option<String>,
}

/// One `-l` entry: an address, and the port it overrides `-p`/`-U` with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr {
    /// The address.
    pub ip: IpAddr,
    /// `HOST:PORT`: this port for TCP and UDP instead of `-p` and `-U`.
    pub port: Option<u16>,
    /// `notls:HOST...`: plain TCP on this address even with TLS on.
    pub notls: bool,
}

/// The effective network settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetSettings {
    /// TCP port.
    pub port: u16,
    /// UDP port; 0 = no UDP.
    pub udp_port: u16,
    /// Addresses to bind (TCP and UDP).
    pub listen: Vec<ListenAddr>,
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
    /// memcached's `-B`: which protocols connections speak.
    pub protocol: BindingProtocol,
}

/// Merges the network flags over their keys over the defaults and checks them.
pub fn resolve(cli: &NetArgs, file: &NetArgs) -> Result<NetSettings, ConfigError> {
    let port = pick_or(cli.port, file.port, "port", DEFAULT_PORT);
    if port.value == 0 {
        return port.origin.fail("the TCP port must be between 1 and 65535");
    }
    let udp_port = pick_or(cli.udp_port, file.udp_port, "udp-port", DEFAULT_UDP_PORT);
    let listen = pick(
        (!cli.listen.is_empty()).then_some(&cli.listen),
        (!file.listen.is_empty()).then_some(&file.listen),
        "listen",
    );
    let listen_ips = match listen {
        Some(l) => parse_listen(l.value, l.origin)?,
        None => parse_listen(&[DEFAULT_LISTEN.to_string()], Origin::Default("listen"))?,
    };
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
    let protocol = pick_or(
        cli.protocol.clone(),
        file.protocol.clone(),
        "protocol",
        "auto".to_string(),
    );
    let protocol = match protocol.value.as_str() {
        "auto" => BindingProtocol::Auto,
        "ascii" => BindingProtocol::Ascii,
        "binary" => BindingProtocol::Binary,
        other => {
            return protocol.origin.fail(format!(
                "invalid value {other:?}: should be one of auto, binary, or ascii"
            ))
        }
    };
    Ok(NetSettings {
        protocol,
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

/// Resolves `-l` values: each a list separated by `,` or `;` of `HOST`,
/// `HOST:PORT`, `[V6]`, `[V6]:PORT` or a bare IPv6 address (more than one
/// `:`, so no port), the way memcached splits them; `*` is every IPv4
/// interface. Names are resolved.
fn parse_listen(values: &[String], origin: Origin) -> Result<Vec<ListenAddr>, ConfigError> {
    let mut out: Vec<ListenAddr> = Vec::new();
    for text in values {
        for part in text.split([',', ';']) {
            let p = part.trim();
            let (notls, p) = match p.strip_prefix("notls:") {
                Some(rest) => (true, rest.trim()),
                None => (false, p),
            };
            if p.is_empty() {
                return origin.fail(format!("empty address in '{text}'"));
            }
            let (host, port) = if let Some(rest) = p.strip_prefix('[') {
                let Some((h, after)) = rest.split_once(']') else {
                    return origin.fail(format!("'{p}': no closing ']'"));
                };
                match after {
                    "" => (h, None),
                    a => match a.strip_prefix(':') {
                        Some(port) => (h, Some(port)),
                        None => return origin.fail(format!("'{p}': expected [V6]:PORT")),
                    },
                }
            } else {
                match p.split_once(':') {
                    Some((h, port)) if !port.contains(':') => (h, Some(port)),
                    _ => (p, None),
                }
            };
            let port = match port {
                None => None,
                Some(t) => match t.parse::<u16>() {
                    Ok(n) if n > 0 => Some(n),
                    _ => return origin.fail(format!("invalid port number in '{p}'")),
                },
            };
            let host = if host == "*" { "0.0.0.0" } else { host };
            let mut ips = Vec::new();
            if let Ok(ip) = host.parse::<IpAddr>() {
                ips.push(ip);
            } else {
                match (host, 0u16).to_socket_addrs() {
                    Ok(addrs) => {
                        for a in addrs {
                            if !ips.contains(&a.ip()) {
                                ips.push(a.ip());
                            }
                        }
                        if ips.is_empty() {
                            return origin.fail(format!("'{host}' resolves to no address"));
                        }
                    }
                    Err(e) => return origin.fail(format!("cannot resolve '{host}': {e}")),
                }
            }
            for ip in ips {
                let a = ListenAddr { ip, port, notls };
                if out.iter().any(|o| o.ip == a.ip && o.port == a.port) {
                    return origin.fail(format!("address {p} given twice"));
                }
                out.push(a);
            }
        }
    }
    Ok(out)
}
