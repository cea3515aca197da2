//! Process section: logging, the user to run as and the item memory file
//! (`-v`, `-u`, `--log-file`, `--persist` and their config keys).

use std::path::PathBuf;

use clap::{ArgAction, Args};
use serde::Deserialize;

use super::value::{pick, ConfigError, Origin};

/// The process flags; each is also a config key of the same name.
#[derive(Args, Deserialize, Debug, Default, Clone)]
#[command(next_help_heading = "Process")]
#[serde(rename_all = "kebab-case")]
pub struct ProcessArgs {
    /// More logging: -v debug, -vv trace (default: info)
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    #[serde(default)]
    pub verbose: u8,
    /// Drop privileges to this user after binding (when started as root)
    #[arg(short = 'u', long = "user", value_name = "USER")]
    pub user: Option<String>,
    /// Write the log to this file instead of stderr
    #[arg(long = "log-file", value_name = "PATH")]
    pub log_file: Option<PathBuf>,
    /// Keep the item memory in this file (a shared mapping; tmpfs or DAX in
    /// production) and restart warm from it after a clean shutdown
    #[arg(long = "persist", value_name = "PATH")]
    pub persist: Option<PathBuf>,
}

/// The effective process settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSettings {
    /// 0 info, 1 debug, 2+ trace.
    pub verbosity: u8,
    /// User to switch to after binding.
    pub user: Option<String>,
    /// Log file; None = stderr.
    pub log_file: Option<PathBuf>,
    /// Item memory file for warm restarts; None = anonymous memory.
    pub persist: Option<PathBuf>,
}

/// Merges the process flags over their keys and checks them.
pub fn resolve(cli: &ProcessArgs, file: &ProcessArgs) -> Result<ProcessSettings, ConfigError> {
    // A count flag: absent is 0, so the key applies only without any -v.
    let verbosity = if cli.verbose > 0 {
        cli.verbose
    } else {
        if file.verbose > 2 {
            return Origin::Key("verbose").fail("must be 0, 1 or 2");
        }
        file.verbose
    };
    let user = pick(cli.user.clone(), file.user.clone(), "user");
    if let Some(u) = &user {
        if u.value.is_empty() {
            return u.origin.fail("empty user name");
        }
    }
    let log_file = pick(cli.log_file.clone(), file.log_file.clone(), "log-file");
    let persist = pick(cli.persist.clone(), file.persist.clone(), "persist");
    for p in [&log_file, &persist].into_iter().flatten() {
        if p.value.as_os_str().is_empty() {
            return p.origin.fail("empty path");
        }
    }
    Ok(ProcessSettings {
        verbosity,
        user: user.map(|u| u.value),
        log_file: log_file.map(|p| p.value),
        persist: persist.map(|p| p.value),
    })
}
