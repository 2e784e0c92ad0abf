use super::*;
use sluice_runtime::testing::check_type_contract;

#[test]
fn contract() {
    check_type_contract(&ListenSyslogType, &crate::registry()).unwrap();
}
