//! Typed resource ids (`sb_<ulid>`, `disk_<ulid>`, …), lowercase ULIDs after
//! the prefix as the CreateOS SDK examples show.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A fresh id: the prefix and a new lowercase ULID.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, ulid::Ulid::new().to_string().to_lowercase()))
            }

            /// Parses an id received from a client; `None` when it does not have
            /// the prefix followed by a 26-character ULID.
            pub fn parse(s: &str) -> Option<Self> {
                let rest = s.strip_prefix($prefix)?;
                ulid::Ulid::from_string(rest).ok()?;
                Some(Self(s.to_ascii_lowercase()))
            }

            /// The id as sent on the wire.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

typed_id!(
    /// A sandbox id, `sb_<ulid>`.
    SandboxId,
    "sb_"
);
typed_id!(
    /// A disk id, `disk_<ulid>`.
    DiskId,
    "disk_"
);
typed_id!(
    /// A network id, `net_<ulid>`.
    NetworkId,
    "net_"
);
typed_id!(
    /// A template id, `tpl_<ulid>`.
    TemplateId,
    "tpl_"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back() {
        let id = SandboxId::generate();
        assert!(id.as_str().starts_with("sb_"));
        assert_eq!(id.as_str().len(), 3 + 26);
        assert_eq!(SandboxId::parse(id.as_str()), Some(id));
    }

    #[test]
    fn ids_with_wrong_prefix_or_body_are_rejected() {
        assert!(SandboxId::parse("disk_01h0000000000000000000000").is_none());
        assert!(SandboxId::parse("sb_not-a-ulid").is_none());
        assert!(SandboxId::parse("sb_").is_none());
    }
}
