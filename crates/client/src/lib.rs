//! Typed access to Calico resources over the key/value datastore (what
//! Calico calls clientv3).
