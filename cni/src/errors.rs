//! ocinet's errors as CNI's: the spec's codes where one fits, ocinet's own
//! (100 and up) where none does; the details are ocinet's message, which
//! names the field and the value.

use ocinet_common::Error;
use rscni_types::error::Error as CniError;

/// ocinet's own codes (the spec leaves 100 and up to plugins).
pub const FAILED: u32 = 100;
pub const POOL_EXHAUSTED: u32 = 101;
pub const ADDRESS_IN_USE: u32 = 102;
pub const CONFLICT: u32 = 103;

pub fn to_cni(e: Error) -> CniError {
    let text = e.to_string();
    match e {
        // A value from the environment (CNI_NETNS, CNI_IFNAME): the spec's
        // "invalid necessary environment variables", not the
        // configuration's fault.
        Error::Invalid { field, .. } if field.starts_with("CNI_") => {
            CniError::InvalidEnvValue(text)
        }
        Error::Invalid { .. } => CniError::InvalidNetworkConfig(text),
        Error::Io { .. } => CniError::IOFailure(text),
        Error::PoolExhausted { .. } => {
            CniError::Custom(POOL_EXHAUSTED, "no address left".into(), text)
        }
        Error::AddressInUse { .. } => {
            CniError::Custom(ADDRESS_IN_USE, "address in use".into(), text)
        }
        Error::Conflict(_) => CniError::Custom(CONFLICT, "conflict".into(), text),
        Error::Context { source, .. } => match to_cni(*source) {
            // Keep the code of the cause, with the whole message.
            CniError::InvalidNetworkConfig(_) => CniError::InvalidNetworkConfig(text),
            CniError::InvalidEnvValue(_) => CniError::InvalidEnvValue(text),
            CniError::IOFailure(_) => CniError::IOFailure(text),
            CniError::Custom(code, msg, _) => CniError::Custom(code, msg, text),
            _ => CniError::Custom(FAILED, "ocinet failed".into(), text),
        },
        _ => CniError::Custom(FAILED, "ocinet failed".into(), text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_environment_variable_is_code_4_a_configuration_key_code_7() {
        let env = Error::invalid("CNI_NETNS", "/proc/self/ns/net", "the host's");
        assert_eq!(u32::from(&to_cni(env)), 4);
        let wrapped = Error::invalid("CNI_NETNS", "/x", "y").context("setup");
        assert_eq!(u32::from(&to_cni(wrapped)), 4);
        let conf = Error::invalid("runtimeConfig.portMappings", "8081:80/tcp", "twice");
        assert_eq!(u32::from(&to_cni(conf)), 7);
    }
}
