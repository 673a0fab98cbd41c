//! calicoctl: the command-line interface over the Calico datastore.

mod output;

fn main() {}
