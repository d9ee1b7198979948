//! The lease table in DynamoDB: [`LeaseStore`] with conditional `UpdateItem`s in
//! the KCL 2.x schema ([`super::schema`]).
//!
//! Fencing: a take expects the counter last seen; the holder's renewals,
//! checkpoints and release also expect its own worker id as owner. A failed
//! condition is [`LeaseError::Lost`], with what the table holds now (the old item is
//! returned on the failure, no extra read).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ReturnValue,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TableStatus,
};
use aws_sdk_dynamodb::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use tokio::time::Instant;
use tracing::{info, warn};

use super::schema::{self, n, s};
use super::{lost_reason, Checkpoint, DeleteIf, Lease, LeaseConfig, LeaseError, LeaseStore};
use crate::aws::{AwsError, ErrorClass};

/// How long [`LeaseStore::ensure_table`] waits for a new table to become ACTIVE
/// (DynamoDB usually takes seconds).
const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(300);
/// How often it asks meanwhile.
const TABLE_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// KCL 2.x attributes of a two-phase checkpoint; a checkpoint supersedes them (as
/// the KCL's own checkpoint write does).
const PENDING_CHECKPOINT_ATTRIBUTES: &str =
    "pendingCheckpoint, pendingCheckpointSubSequenceNumber, pendingCheckpointState";

/// Leases in one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoDbLeaseStore {
    client: Client,
    table: String,
    create_table: bool,
}

impl DynamoDbLeaseStore {
    /// Leases in `table`, which [`LeaseStore::ensure_table`] creates when missing
    /// (see [`DynamoDbLeaseStore::create_table`]).
    ///
    /// Give `client` an operation timeout well below the renewal interval (see
    /// [`with_timeout`], or use [`DynamoDbLeaseStore::from_config`]) so that a hung
    /// call cannot outlive a lease.
    pub fn new(client: Client, table: impl Into<String>) -> DynamoDbLeaseStore {
        DynamoDbLeaseStore {
            client,
            table: table.into(),
            create_table: true,
        }
    }

    /// The store for the `[lease]` settings: calls give up after the renew
    /// interval, so a hung call never holds a lease's writes past its next renewal,
    /// and the table is created when missing if `create_table`.
    pub fn from_config(
        config: &aws_config::SdkConfig,
        table: impl Into<String>,
        lease: &LeaseConfig,
    ) -> DynamoDbLeaseStore {
        let client = with_timeout(&Client::new(config), lease.renew_interval());
        DynamoDbLeaseStore::new(client, table).create_table(lease.create_table)
    }

    /// Whether a missing table is created (`true`, the default) or an error
    /// ([`LeaseError::TableMissing`]), for operators who create it themselves.
    pub fn create_table(mut self, create: bool) -> DynamoDbLeaseStore {
        self.create_table = create;
        self
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    fn key(&self, key: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([(schema::LEASE_KEY.to_owned(), s(key))])
    }

    async fn create(&self) -> Result<(), LeaseError> {
        info!(table = %self.table, "creating lease table");
        let result = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(schema::LEASE_KEY)
                    .key_type(KeyType::Hash)
                    .build()
                    .expect("name and type are set"),
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(schema::LEASE_KEY)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .expect("name and type are set"),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Another worker created it first.
            Err(err) if err.code() == Some("ResourceInUseException") => Ok(()),
            Err(err) => Err(lease_error("CreateTable", &err)),
        }
    }

    /// Sends a conditional update of `seen`; `holder` adds the owner condition.
    async fn conditional(
        &self,
        seen: &Lease,
        holder: bool,
        update: UpdateItemFluentBuilder,
    ) -> Result<Lease, LeaseError> {
        let mut condition = format!("{} = :seen", schema::LEASE_COUNTER);
        let mut update = update
            .table_name(&self.table)
            .set_key(Some(self.key(&seen.key)))
            .expression_attribute_values(":seen", n(seen.counter))
            .expression_attribute_values(":next", n(seen.counter + 1))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if holder {
            let Some(owner) = &seen.owner else {
                return Err(LeaseError::Lost {
                    key: seen.key.clone(),
                    reason: "it is not held (no owner in the lease given)".into(),
                });
            };
            condition.push_str(&format!(" AND {} = :owner", schema::LEASE_OWNER));
            update = update.expression_attribute_values(":owner", s(owner));
        }
        match update.condition_expression(condition).send().await {
            Ok(out) => match out.attributes() {
                Some(item) => schema::from_item(item),
                None => Err(LeaseError::Malformed {
                    key: seen.key.clone(),
                    reason: "UpdateItem returned no attributes".into(),
                }),
            },
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                let reason = match e.err() {
                    UpdateItemError::ConditionalCheckFailedException(failed) => match failed.item()
                    {
                        None => lost_reason(None),
                        Some(item) => match schema::from_item(item) {
                            Ok(current) => lost_reason(Some(&current)),
                            Err(err) => {
                                format!("the table holds an item that is not a lease ({err})")
                            }
                        },
                    },
                    _ => unreachable!("checked above"),
                };
                Err(LeaseError::Lost {
                    key: seen.key.clone(),
                    reason,
                })
            }
            Err(err) => Err(lease_error("UpdateItem", &err)),
        }
    }
}

/// `client` with its calls (the SDK's retries included) giving up after
/// `timeout`.
pub fn with_timeout(client: &Client, timeout: Duration) -> Client {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .operation_timeout(timeout)
        .build();
    Client::from_conf(
        client
            .config()
            .to_builder()
            .timeout_config(timeouts)
            .build(),
    )
}

fn lease_error<E>(operation: &'static str, err: &SdkError<E, HttpResponse>) -> LeaseError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let err = AwsError::new(operation, err);
    match err.class {
        ErrorClass::Fatal => LeaseError::Fatal(err),
        ErrorClass::Throttled | ErrorClass::Transient => LeaseError::Transient(err),
    }
}

impl LeaseStore for DynamoDbLeaseStore {
    async fn ensure_table(&self) -> Result<(), LeaseError> {
        let deadline = Instant::now() + TABLE_ACTIVE_TIMEOUT;
        let mut created = false;
        loop {
            match self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
            {
                Ok(out) => {
                    let Some(table) = out.table() else {
                        return Err(LeaseError::BadTable {
                            table: self.table.clone(),
                            reason: "DescribeTable returned no description".into(),
                        });
                    };
                    check_key_schema(
                        &self.table,
                        table.key_schema(),
                        table.attribute_definitions(),
                    )?;
                    match table.table_status() {
                        Some(TableStatus::Active | TableStatus::Updating) => return Ok(()),
                        Some(TableStatus::Creating) | None => {}
                        Some(status) => {
                            return Err(LeaseError::BadTable {
                                table: self.table.clone(),
                                reason: format!("its status is {}", status.as_str()),
                            })
                        }
                    }
                }
                Err(err) if err.code() == Some("ResourceNotFoundException") => {
                    if !self.create_table {
                        return Err(LeaseError::TableMissing {
                            table: self.table.clone(),
                        });
                    }
                    if !created {
                        self.create().await?;
                        created = true;
                        continue;
                    }
                }
                Err(err) => return Err(lease_error("DescribeTable", &err)),
            }
            if Instant::now() >= deadline {
                return Err(LeaseError::BadTable {
                    table: self.table.clone(),
                    reason: format!("not ACTIVE after {}s", TABLE_ACTIVE_TIMEOUT.as_secs()),
                });
            }
            tokio::time::sleep(TABLE_POLL_INTERVAL).await;
        }
    }

    async fn list(&self) -> Result<Vec<Lease>, LeaseError> {
        let mut leases = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|err| lease_error("Scan", &err))?;
            for item in page.items() {
                match schema::from_item(item) {
                    Ok(lease) => leases.push(lease),
                    Err(err) => {
                        warn!(table = %self.table, error = %err, "skipping lease table item")
                    }
                }
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        leases.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(leases)
    }

    async fn get(&self, key: &str) -> Result<Option<Lease>, LeaseError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(self.key(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| lease_error("GetItem", &err))?;
        out.item().map(schema::from_item).transpose()
    }

    async fn create(&self, lease: &Lease) -> Result<bool, LeaseError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(schema::to_new_item(lease)))
            .condition_expression(format!("attribute_not_exists({})", schema::LEASE_KEY))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if err.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(err) => Err(lease_error("PutItem", &err)),
        }
    }

    async fn take(&self, lease: &Lease, owner: &str) -> Result<Lease, LeaseError> {
        let mut expression = format!(
            "SET {} = :new_owner, {} = :next",
            schema::LEASE_OWNER,
            schema::LEASE_COUNTER
        );
        let mut update = self
            .client
            .update_item()
            .expression_attribute_values(":new_owner", s(owner));
        // The counter condition guarantees the owner we saw is the owner now.
        if lease.owner.as_deref().is_some_and(|old| old != owner) {
            expression.push_str(&format!(
                " ADD {} :one",
                schema::OWNER_SWITCHES_SINCE_CHECKPOINT
            ));
            update = update.expression_attribute_values(":one", n(1));
        }
        self.conditional(lease, false, update.update_expression(expression))
            .await
    }

    async fn renew(&self, lease: &Lease) -> Result<Lease, LeaseError> {
        let mut expression = format!("SET {} = :next", schema::LEASE_COUNTER);
        let mut update = self.client.update_item();
        if let Some(lag) = lease.millis_behind_latest {
            expression.push_str(&format!(", {} = :lag", schema::MILLIS_BEHIND_LATEST));
            update = update.expression_attribute_values(":lag", n(lag));
        }
        self.conditional(lease, true, update.update_expression(expression))
            .await
    }

    async fn checkpoint(
        &self,
        lease: &Lease,
        checkpoint: &Checkpoint,
        child_shard_ids: &[String],
    ) -> Result<Lease, LeaseError> {
        let mut expression = format!(
            "SET {} = :next, {} = :checkpoint, {} = :sub, {} = :zero",
            schema::LEASE_COUNTER,
            schema::CHECKPOINT,
            schema::CHECKPOINT_SUB_SEQUENCE_NUMBER,
            schema::OWNER_SWITCHES_SINCE_CHECKPOINT,
        );
        let mut update = self
            .client
            .update_item()
            .expression_attribute_values(":checkpoint", s(checkpoint.as_str()))
            .expression_attribute_values(":sub", n(checkpoint.sub_sequence_number()))
            .expression_attribute_values(":zero", n(0));
        if let Some(children) = schema::ss(child_shard_ids) {
            expression.push_str(&format!(", {} = :children", schema::CHILD_SHARD_IDS));
            update = update.expression_attribute_values(":children", children);
        }
        if let Some(lag) = lease.millis_behind_latest {
            expression.push_str(&format!(", {} = :lag", schema::MILLIS_BEHIND_LATEST));
            update = update.expression_attribute_values(":lag", n(lag));
        }
        expression.push_str(&format!(" REMOVE {PENDING_CHECKPOINT_ATTRIBUTES}"));
        self.conditional(lease, true, update.update_expression(expression))
            .await
    }

    async fn release(&self, lease: &Lease) -> Result<Lease, LeaseError> {
        let update = self.client.update_item().update_expression(format!(
            "SET {} = :next REMOVE {}",
            schema::LEASE_COUNTER,
            schema::LEASE_OWNER
        ));
        self.conditional(lease, true, update).await
    }

    async fn delete(&self, key: &str) -> Result<(), LeaseError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(self.key(key)))
            .send()
            .await
            .map_err(|err| lease_error("DeleteItem", &err))?;
        Ok(())
    }

    async fn delete_if(&self, lease: &Lease, condition: DeleteIf) -> Result<bool, LeaseError> {
        let mut delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(self.key(&lease.key)));
        let expression = match condition {
            DeleteIf::Finished => {
                delete = delete
                    .expression_attribute_values(":end", s(Checkpoint::ShardEnd.as_str()))
                    .expression_attribute_values(":seen", n(lease.counter));
                let owner = match &lease.owner {
                    Some(owner) => {
                        delete = delete.expression_attribute_values(":owner", s(owner));
                        format!("{} = :owner", schema::LEASE_OWNER)
                    }
                    None => format!("attribute_not_exists({})", schema::LEASE_OWNER),
                };
                format!(
                    "{} = :end AND {} = :seen AND {owner}",
                    schema::CHECKPOINT,
                    schema::LEASE_COUNTER
                )
            }
            DeleteIf::Stale => match lease.stream_creation_epoch {
                Some(epoch) => {
                    delete = delete.expression_attribute_values(":epoch", n(epoch));
                    format!("{} = :epoch", schema::STREAM_CREATION_EPOCH)
                }
                None => {
                    delete = delete
                        .expression_attribute_values(":checkpoint", s(lease.checkpoint.as_str()));
                    format!(
                        "attribute_not_exists({}) AND {} = :checkpoint",
                        schema::STREAM_CREATION_EPOCH,
                        schema::CHECKPOINT
                    )
                }
            },
        };
        match delete.condition_expression(expression).send().await {
            Ok(_) => Ok(true),
            Err(err) if err.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(err) => Err(lease_error("DeleteItem", &err)),
        }
    }

    async fn stamp_creation_epoch(&self, key: &str, epoch: u64) -> Result<bool, LeaseError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(key)))
            .update_expression(format!("SET {} = :epoch", schema::STREAM_CREATION_EPOCH))
            .condition_expression(format!(
                "attribute_exists({}) AND attribute_not_exists({})",
                schema::LEASE_KEY,
                schema::STREAM_CREATION_EPOCH
            ))
            .expression_attribute_values(":epoch", n(epoch))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if err.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(err) => Err(lease_error("UpdateItem", &err)),
        }
    }
}

/// A lease table has exactly the hash key `leaseKey` of type S.
fn check_key_schema(
    table: &str,
    keys: &[KeySchemaElement],
    attributes: &[AttributeDefinition],
) -> Result<(), LeaseError> {
    let hash_is_lease_key = matches!(keys, [key] if key.attribute_name() == schema::LEASE_KEY && *key.key_type() == KeyType::Hash);
    let lease_key_is_string = attributes.iter().any(|a| {
        a.attribute_name() == schema::LEASE_KEY && *a.attribute_type() == ScalarAttributeType::S
    });
    if hash_is_lease_key && lease_key_is_string {
        return Ok(());
    }
    let found: Vec<String> = keys
        .iter()
        .map(|k| format!("{} ({})", k.attribute_name(), k.key_type().as_str()))
        .collect();
    Err(LeaseError::BadTable {
        table: table.to_owned(),
        reason: format!(
            "its key is {}, not the lease table's single hash key {} of type S (is it another application's table?)",
            found.join(", "),
            schema::LEASE_KEY
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, kind: KeyType) -> KeySchemaElement {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    }

    fn attr(name: &str, kind: ScalarAttributeType) -> AttributeDefinition {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .unwrap()
    }

    #[test]
    fn key_schema_must_be_the_kcl_one() {
        let good = check_key_schema(
            "t",
            &[key("leaseKey", KeyType::Hash)],
            &[attr("leaseKey", ScalarAttributeType::S)],
        );
        assert!(good.is_ok());
        let err = check_key_schema(
            "orders",
            &[key("id", KeyType::Hash), key("ts", KeyType::Range)],
            &[attr("id", ScalarAttributeType::S)],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("orders") && err.contains("id (HASH), ts (RANGE)"),
            "{err}"
        );
        let err = check_key_schema(
            "t",
            &[key("leaseKey", KeyType::Hash)],
            &[attr("leaseKey", ScalarAttributeType::N)],
        );
        assert!(err.is_err());
    }
}
