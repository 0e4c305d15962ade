//! Generated sandbox names, `<adjective>-<animal>` (seed 003), used as the
//! hostname when the caller gives none.

use rand::seq::IndexedRandom;

const ADJECTIVES: &[&str] = &[
    "agile", "amber", "bold", "brave", "bright", "calm", "clever", "cosy", "crisp", "curious",
    "daring", "eager", "fancy", "fast", "fierce", "gentle", "glad", "golden", "grand", "happy",
    "hardy", "jolly", "keen", "kind", "lively", "lucky", "merry", "mighty", "misty", "modest",
    "neat", "nimble", "noble", "plucky", "polite", "proud", "quick", "quiet", "rapid", "rosy",
    "shiny", "silent", "sleek", "snowy", "solid", "sunny", "swift", "tidy", "vivid", "witty",
];

const ANIMALS: &[&str] = &[
    "badger", "beaver", "bison", "condor", "crane", "dingo", "dolphin", "eagle", "falcon",
    "ferret", "finch", "fox", "gecko", "heron", "ibis", "jackal", "koala", "lemur", "lynx",
    "marmot", "marten", "mink", "moose", "narwhal", "newt", "ocelot", "orca", "osprey", "otter",
    "owl", "panda", "parrot", "pelican", "puffin", "quail", "rabbit", "raven", "seal", "sparrow",
    "stoat", "swan", "tapir", "tiger", "toucan", "turtle", "viper", "walrus", "weasel", "wolf",
    "yak",
];

/// A random `<adjective>-<animal>`; `salt` (0 on the first try) appends a
/// number after collisions.
pub fn generate(salt: u32) -> String {
    let mut rng = rand::rng();
    let adj = ADJECTIVES.choose(&mut rng).copied().unwrap_or("quick");
    let animal = ANIMALS.choose(&mut rng).copied().unwrap_or("otter");
    if salt == 0 {
        format!("{adj}-{animal}")
    } else {
        format!("{adj}-{animal}-{}", rand::random_range(100..10_000u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_hostnames() {
        for salt in 0..50 {
            let n = generate(salt);
            cove_api::validate::validate_name(&n).unwrap();
            assert!(n.split('-').count() >= 2);
        }
    }
}
