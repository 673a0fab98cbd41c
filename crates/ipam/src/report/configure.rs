//! `calicoctl ipam configure`: change the cluster-wide IPAM settings.

use calico_datastore::Backend;

use crate::allocator::Ipam;
use crate::error::IpamError;

/// The settings to change; `None` leaves one as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigureArgs {
    pub strict_affinity: Option<bool>,
    pub max_blocks_per_host: Option<u32>,
    /// `Enabled` or `Disabled`.
    pub kube_virt_vm_address_persistence: Option<String>,
    pub ip_cooldown_seconds: Option<u32>,
}

/// Go's `strconv.ParseBool`, which calicoctl uses for `--strictaffinity`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

impl ConfigureArgs {
    /// Reads calicoctl's flags as given (empty strings and a negative
    /// cooldown mean "not given"), with calicoctl's messages for bad
    /// values.
    pub fn from_flags(
        strict_affinity: &str,
        max_blocks_per_host: &str,
        kubevirt_ip_persistence: &str,
        ip_cooldown_seconds: i64,
    ) -> Result<ConfigureArgs, String> {
        let mut args = ConfigureArgs::default();
        if !strict_affinity.is_empty() {
            args.strict_affinity = Some(parse_go_bool(strict_affinity).ok_or_else(|| {
                "invalid value. Use true or false to set strictaffinity".to_owned()
            })?);
        }
        if !max_blocks_per_host.is_empty() {
            args.max_blocks_per_host =
                Some(max_blocks_per_host.parse::<u32>().map_err(|_| {
                    "invalid value for maxblockhost. Use a valid number".to_owned()
                })?);
        }
        if !kubevirt_ip_persistence.is_empty() {
            if kubevirt_ip_persistence != "Enabled" && kubevirt_ip_persistence != "Disabled" {
                return Err(
                    "invalid value for --kubevirt-ip-persistence. Use Enabled or Disabled".into(),
                );
            }
            args.kube_virt_vm_address_persistence = Some(kubevirt_ip_persistence.to_owned());
        }
        if ip_cooldown_seconds >= 0 {
            args.ip_cooldown_seconds = Some(u32::try_from(ip_cooldown_seconds).unwrap_or(u32::MAX));
        }
        if args == ConfigureArgs::default() {
            return Err("at least one configuration option must be specified".into());
        }
        Ok(args)
    }
}

impl<B: Backend> Ipam<B> {
    /// Applies the changes (checking Calico's rules) and returns
    /// calicoctl's confirmation lines.
    pub async fn configure(&self, args: &ConfigureArgs) -> Result<String, IpamError> {
        let mut config = self.get_config().await?;
        if let Some(v) = args.strict_affinity {
            config.strict_affinity = v;
        }
        if let Some(v) = args.max_blocks_per_host {
            config.max_blocks_per_host = v;
        }
        if let Some(v) = &args.kube_virt_vm_address_persistence {
            config.kube_virt_vm_address_persistence = Some(v.clone());
        }
        if let Some(v) = args.ip_cooldown_seconds {
            config.ip_cooldown_seconds = v;
        }
        self.set_config(&config).await?;
        let mut out = String::new();
        if let Some(v) = args.strict_affinity {
            out.push_str(&format!("Successfully set StrictAffinity to: {v}\n"));
        }
        if let Some(v) = args.max_blocks_per_host {
            out.push_str(&format!("Successfully set MaxBlocksPerHost to: {v}\n"));
        }
        if let Some(v) = &args.kube_virt_vm_address_persistence {
            out.push_str(&format!(
                "Successfully set KubeVirtVMAddressPersistence to: {v}\n"
            ));
        }
        if let Some(v) = args.ip_cooldown_seconds {
            out.push_str(&format!("Successfully set IPCooldownSeconds to: {v}\n"));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        let a = ConfigureArgs::from_flags("T", "4", "", -1).unwrap();
        assert_eq!(
            (
                a.strict_affinity,
                a.max_blocks_per_host,
                a.ip_cooldown_seconds
            ),
            (Some(true), Some(4), None)
        );
        assert_eq!(
            ConfigureArgs::from_flags("yes", "", "", -1).unwrap_err(),
            "invalid value. Use true or false to set strictaffinity"
        );
        assert_eq!(
            ConfigureArgs::from_flags("", "many", "", -1).unwrap_err(),
            "invalid value for maxblockhost. Use a valid number"
        );
        assert!(ConfigureArgs::from_flags("", "", "Maybe", -1).is_err());
        assert_eq!(
            ConfigureArgs::from_flags("", "", "", -1).unwrap_err(),
            "at least one configuration option must be specified"
        );
        assert_eq!(
            ConfigureArgs::from_flags("", "", "", 0)
                .unwrap()
                .ip_cooldown_seconds,
            Some(0)
        );
    }
}
