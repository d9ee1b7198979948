//! The SDK configuration path the daemon uses (`kinesis_collector::aws`), against
//! the emulators: an assumed role's credentials come from STS (moto), and a
//! missing region is a clear error. One test, as it changes the environment.

mod common {
    pub mod aws;
}

use aws_credential_types::provider::ProvideCredentials;
use common::aws;
use kinesis_collector::aws::{sdk_config, AwsConfigError, AwsTarget};
use kinesis_collector::kinesis::api::list_shards;
use kinesis_collector::kinesis::StreamId;

#[tokio::test]
async fn assumed_role_and_region_from_the_standard_chain() {
    let plain = aws::config().await;
    let base = plain
        .credentials_provider()
        .unwrap()
        .provide_credentials()
        .await
        .unwrap();
    assert_eq!(base.access_key_id(), "test");

    let target = AwsTarget {
        region: Some("us-west-2".into()),
        role_arn: Some("arn:aws:iam::123456789012:role/kinesis-collector-reader".into()),
        external_id: Some("fortisiem".into()),
    };
    let config = sdk_config(&target, "worker 1/a").await.unwrap();
    assert_eq!(config.region().unwrap().as_ref(), "us-west-2");
    let assumed = config
        .credentials_provider()
        .unwrap()
        .provide_credentials()
        .await
        .unwrap();
    assert_ne!(
        assumed.access_key_id(),
        "test",
        "credentials must come from STS AssumeRole"
    );
    assert!(assumed.session_token().is_some());
    assert!(assumed.expiry().is_some());

    // The assumed credentials call Kinesis (kinesis-local accepts any).
    let client = aws_sdk_kinesis::Client::new(&config);
    let stream = aws::create_stream(&client, 1).await;
    assert_eq!(
        list_shards(&client, &StreamId::Name(stream.clone()), None)
            .await
            .unwrap()
            .len(),
        1
    );
    aws::delete_stream(&client, &stream).await;

    // No region anywhere: a clear error, not a call to a default region.
    std::env::remove_var("AWS_REGION");
    std::env::remove_var("AWS_DEFAULT_REGION");
    let err = sdk_config(&AwsTarget::default(), "w").await.unwrap_err();
    assert!(matches!(err, AwsConfigError::NoRegion));
    assert!(err.to_string().contains("AWS_REGION"), "{err}");
}
