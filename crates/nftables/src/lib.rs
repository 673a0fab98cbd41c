//! calico-nftables: the agent's nftables state as a value, and the driver
//! that reconciles the kernel to it.
