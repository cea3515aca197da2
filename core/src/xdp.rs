//! The AF_XDP front end's two mode settings, declared once.
//!
//! The server parses and checks `--xdp-mode` and `--xdp-zero-copy` in every
//! build, also one without the AF_XDP front end (the `petrel-xdp` crate is
//! Linux-only and optional), so the types live here, where both depend on
//! them. Their spellings are the server's flag values.

use core::fmt;
use core::str::FromStr;

/// Where the XDP program runs (`--xdp-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// Native (driver) mode first, generic (SKB) mode if the driver refuses.
    Auto,
    /// Native (driver) XDP only (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// Generic XDP on the socket buffer only (`XDP_FLAGS_SKB_MODE`).
    Generic,
}

/// Whether AF_XDP sockets bind in zero-copy mode (`--xdp-zero-copy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZeroCopy {
    /// Zero-copy where the driver supports it (native mode only), else copy.
    Auto,
    /// Zero-copy or fail.
    On,
    /// Copy mode.
    Off,
}

/// A setting's text is none of its spellings; `expected` lists them
/// (e.g. `auto, native or generic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownSetting {
    /// The accepted spellings, as a phrase.
    pub expected: &'static str,
}

impl fmt::Display for UnknownSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected {}", self.expected)
    }
}

impl AttachMode {
    /// The accepted spellings, as a phrase.
    pub const EXPECTED: &'static str = "auto, native or generic";

    /// The spelling `FromStr` accepts for this mode.
    pub const fn name(self) -> &'static str {
        match self {
            AttachMode::Auto => "auto",
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
        }
    }
}

impl ZeroCopy {
    /// The accepted spellings, as a phrase.
    pub const EXPECTED: &'static str = "auto, on or off";

    /// The spelling `FromStr` accepts for this setting.
    pub const fn name(self) -> &'static str {
        match self {
            ZeroCopy::Auto => "auto",
            ZeroCopy::On => "on",
            ZeroCopy::Off => "off",
        }
    }
}

impl FromStr for AttachMode {
    type Err = UnknownSetting;

    /// Parses `auto`, `native` or `generic`.
    fn from_str(s: &str) -> Result<Self, UnknownSetting> {
        match s {
            "auto" => Ok(AttachMode::Auto),
            "native" => Ok(AttachMode::Native),
            "generic" => Ok(AttachMode::Generic),
            _ => Err(UnknownSetting {
                expected: Self::EXPECTED,
            }),
        }
    }
}

impl FromStr for ZeroCopy {
    type Err = UnknownSetting;

    /// Parses `auto`, `on` or `off`.
    fn from_str(s: &str) -> Result<Self, UnknownSetting> {
        match s {
            "auto" => Ok(ZeroCopy::Auto),
            "on" => Ok(ZeroCopy::On),
            "off" => Ok(ZeroCopy::Off),
            _ => Err(UnknownSetting {
                expected: Self::EXPECTED,
            }),
        }
    }
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for ZeroCopy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn every_setting_parses_back_from_its_name() {
        for m in [AttachMode::Auto, AttachMode::Native, AttachMode::Generic] {
            assert_eq!(m.name().parse::<AttachMode>(), Ok(m));
            assert_eq!(m.to_string(), m.name());
        }
        for z in [ZeroCopy::Auto, ZeroCopy::On, ZeroCopy::Off] {
            assert_eq!(z.name().parse::<ZeroCopy>(), Ok(z));
            assert_eq!(z.to_string(), z.name());
        }
    }

    #[test]
    fn other_spellings_are_refused_with_the_accepted_ones() {
        for bad in ["", "on", "Native", "native-zc", "auto "] {
            let e = bad.parse::<AttachMode>().unwrap_err();
            assert_eq!(e.to_string(), "expected auto, native or generic");
        }
        for bad in ["", "native", "ON", "1"] {
            let e = bad.parse::<ZeroCopy>().unwrap_err();
            assert_eq!(e.to_string(), "expected auto, on or off");
        }
    }
}
