//! Sandbox networking: bridges, veth, netns, nftables
