//! Every field AWS documents for flow log records, with the version that introduced
//! it and how its value is typed in the JSON output.
//!
//! Sources (read 2026-11):
//! - VPC flow logs, "Available fields":
//!   <https://docs.aws.amazon.com/vpc/latest/userguide/flow-log-records.html#flow-logs-fields>
//! - Transit Gateway flow logs, "Transit Gateway Flow Log records":
//!   <https://docs.aws.amazon.com/vpc/latest/tgw/tgw-flow-logs.html#flow-log-records>
//!
//! Versions: 2 is the default format; 3 added the interface metadata (vpc-id ...
//! pkt-dstaddr); 4 the location fields; 5 the AWS-service, direction and path fields;
//! 6 is the Transit Gateway record (all `tgw-*`, `resource-type`, `packets-lost-*`);
//! 7 the ECS fields; 8 `reject-reason`; `resource-id` and `encryption-status` came
//! with regional NAT gateways and VPC encryption controls (November 2025; recorded
//! here as 10, the version the full 42-field format reports — the copy of the table
//! read for this did not show their column); 11 (June 2026) added `interface-type`,
//! the `next-hop-*` fields and the EC2 tag fields (`instance-tag`, `interface-tag`,
//! `asg-tag` and their `-2` twins). A record's `version` is the highest version
//! among its format's fields. The version numbers are informative only: parsing
//! never depends on them.

/// How a field's value is written in the JSON output (`-` is always `null`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A count, port, time or code: a JSON number (a string if it is not one).
    Int,
    /// An identifier: always a string, even when it is all digits (`account-id`).
    Id,
    /// Anything else: a string.
    Text,
}

/// Which flow logs can carry a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// VPC, subnet and network-interface flow logs only.
    Vpc,
    /// Transit Gateway flow logs only.
    TransitGateway,
    /// Both kinds.
    Both,
}

/// One documented field.
#[derive(Debug, PartialEq, Eq)]
pub struct Field {
    /// The AWS name, as written in `${...}`: `log-status`.
    pub name: &'static str,
    /// The key in the JSON output: the name with underscores, `log_status`.
    pub key: &'static str,
    /// The flow log version that introduced the field.
    pub version: u8,
    /// How the value is typed in JSON.
    pub kind: Kind,
    /// Which flow logs carry it.
    pub scope: Scope,
}

macro_rules! fields {
    ($( $name:literal $key:literal $version:literal $kind:ident $scope:ident ),* $(,)?) => {
        /// Every documented field, VPC fields in the order of AWS's table, then the
        /// Transit Gateway-only fields.
        pub static FIELDS: &[Field] = &[
            $( Field { name: $name, key: $key, version: $version, kind: Kind::$kind, scope: Scope::$scope }, )*
        ];
    };
}

fields! {
    // Version 2: the default format, in its order.
    "version" "version" 2 Int Both,
    "account-id" "account_id" 2 Id Both,
    "interface-id" "interface_id" 2 Id Vpc,
    "srcaddr" "srcaddr" 2 Text Both,
    "dstaddr" "dstaddr" 2 Text Both,
    "srcport" "srcport" 2 Int Both,
    "dstport" "dstport" 2 Int Both,
    "protocol" "protocol" 2 Int Both,
    "packets" "packets" 2 Int Both,
    "bytes" "bytes" 2 Int Both,
    "start" "start" 2 Int Both,
    "end" "end" 2 Int Both,
    "action" "action" 2 Text Vpc,
    "log-status" "log_status" 2 Text Both,
    // Version 3.
    "vpc-id" "vpc_id" 3 Id Vpc,
    "subnet-id" "subnet_id" 3 Id Vpc,
    "instance-id" "instance_id" 3 Id Vpc,
    "tcp-flags" "tcp_flags" 3 Int Both,
    "type" "type" 3 Text Both,
    "pkt-srcaddr" "pkt_srcaddr" 3 Text Vpc,
    "pkt-dstaddr" "pkt_dstaddr" 3 Text Vpc,
    // Version 4.
    "region" "region" 4 Text Both,
    "az-id" "az_id" 4 Id Vpc,
    "sublocation-type" "sublocation_type" 4 Text Vpc,
    "sublocation-id" "sublocation_id" 4 Id Vpc,
    // Version 5.
    "pkt-src-aws-service" "pkt_src_aws_service" 5 Text Both,
    "pkt-dst-aws-service" "pkt_dst_aws_service" 5 Text Both,
    "flow-direction" "flow_direction" 5 Text Both,
    "traffic-path" "traffic_path" 5 Int Vpc,
    // Version 7: Amazon ECS.
    "ecs-cluster-arn" "ecs_cluster_arn" 7 Text Vpc,
    "ecs-cluster-name" "ecs_cluster_name" 7 Text Vpc,
    "ecs-container-instance-arn" "ecs_container_instance_arn" 7 Text Vpc,
    "ecs-container-instance-id" "ecs_container_instance_id" 7 Id Vpc,
    "ecs-container-id" "ecs_container_id" 7 Id Vpc,
    "ecs-second-container-id" "ecs_second_container_id" 7 Id Vpc,
    "ecs-service-name" "ecs_service_name" 7 Text Vpc,
    "ecs-task-definition-arn" "ecs_task_definition_arn" 7 Text Vpc,
    "ecs-task-arn" "ecs_task_arn" 7 Text Vpc,
    "ecs-task-id" "ecs_task_id" 7 Id Vpc,
    // Version 8.
    "reject-reason" "reject_reason" 8 Text Vpc,
    // Version 10 (see the module comment).
    "resource-id" "resource_id" 10 Id Vpc,
    "encryption-status" "encryption_status" 10 Int Vpc,
    // Version 11: network interface type, next hop, EC2 tags.
    "interface-type" "interface_type" 11 Text Vpc,
    "next-hop-interface-id" "next_hop_interface_id" 11 Id Vpc,
    "next-hop-subnet-id" "next_hop_subnet_id" 11 Id Vpc,
    "next-hop-az-id" "next_hop_az_id" 11 Id Vpc,
    "next-hop-vpc-id" "next_hop_vpc_id" 11 Id Vpc,
    "next-hop-interface-type" "next_hop_interface_type" 11 Text Vpc,
    "instance-tag" "instance_tag" 11 Text Vpc,
    "instance-tag-2" "instance_tag_2" 11 Text Vpc,
    "interface-tag" "interface_tag" 11 Text Vpc,
    "interface-tag-2" "interface_tag_2" 11 Text Vpc,
    "asg-tag" "asg_tag" 11 Text Vpc,
    "asg-tag-2" "asg_tag_2" 11 Text Vpc,
    // Transit Gateway flow logs (version 6), besides the shared fields above.
    "resource-type" "resource_type" 6 Text TransitGateway,
    "tgw-id" "tgw_id" 6 Id TransitGateway,
    "tgw-attachment-id" "tgw_attachment_id" 6 Id TransitGateway,
    "tgw-src-vpc-account-id" "tgw_src_vpc_account_id" 6 Id TransitGateway,
    "tgw-dst-vpc-account-id" "tgw_dst_vpc_account_id" 6 Id TransitGateway,
    "tgw-src-vpc-id" "tgw_src_vpc_id" 6 Id TransitGateway,
    "tgw-dst-vpc-id" "tgw_dst_vpc_id" 6 Id TransitGateway,
    "tgw-src-subnet-id" "tgw_src_subnet_id" 6 Id TransitGateway,
    "tgw-dst-subnet-id" "tgw_dst_subnet_id" 6 Id TransitGateway,
    "tgw-src-eni" "tgw_src_eni" 6 Id TransitGateway,
    "tgw-dst-eni" "tgw_dst_eni" 6 Id TransitGateway,
    "tgw-src-az-id" "tgw_src_az_id" 6 Id TransitGateway,
    "tgw-dst-az-id" "tgw_dst_az_id" 6 Id TransitGateway,
    "tgw-pair-attachment-id" "tgw_pair_attachment_id" 6 Id TransitGateway,
    "packets-lost-no-route" "packets_lost_no_route" 6 Int TransitGateway,
    "packets-lost-blackhole" "packets_lost_blackhole" 6 Int TransitGateway,
    "packets-lost-mtu-exceeded" "packets_lost_mtu_exceeded" 6 Int TransitGateway,
    "packets-lost-ttl-expired" "packets_lost_ttl_expired" 6 Int TransitGateway,
}

/// The documented field called `name` (the name inside `${...}`).
pub fn lookup(name: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| f.name == name)
}

/// The documented field name closest to an unknown `name`, if one is close enough
/// to be a likely typo (`srcadr` → `srcaddr`, `log_status` → `log-status`).
pub fn suggest(name: &str) -> Option<&'static str> {
    let normalized = name.to_ascii_lowercase().replace('_', "-");
    FIELDS
        .iter()
        .map(|f| (edit_distance(&normalized, f.name), f.name))
        .filter(|&(d, candidate)| d <= 2.max(candidate.len() / 4))
        .min_by_key(|&(d, _)| d)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance over bytes (field names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_keys_are_names_with_underscores() {
        for (i, f) in FIELDS.iter().enumerate() {
            assert_eq!(f.key, f.name.replace('-', "_"), "{}", f.name);
            assert!(
                FIELDS[i + 1..].iter().all(|g| g.name != f.name),
                "{} twice",
                f.name
            );
        }
    }

    #[test]
    fn ids_stay_strings() {
        for f in FIELDS {
            if f.name.ends_with("-id") || f.name.ends_with("-eni") {
                assert_eq!(f.kind, Kind::Id, "{}", f.name);
            }
        }
    }

    #[test]
    fn typos_get_a_suggestion_and_nonsense_does_not() {
        assert_eq!(suggest("srcadr"), Some("srcaddr"));
        assert_eq!(suggest("log_status"), Some("log-status"));
        assert_eq!(suggest("pkt-src-addr"), Some("pkt-srcaddr"));
        assert_eq!(suggest("ecs-task-arm"), Some("ecs-task-arn"));
        assert_eq!(suggest("hostname"), None);
    }
}
