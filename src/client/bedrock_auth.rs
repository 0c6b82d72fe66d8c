//! How requests to Amazon Bedrock authenticate ([`BedrockAuth`]): a Bedrock API key, fixed
//! AWS credentials, or the standard chain's local links ([`AwsChain`]), and where each is read
//! from.

use super::aws_chain::AwsChain;
use super::credentials::Secret;
use super::env::non_empty_env;
use super::sigv4::AwsCredentials;

/// The variables a Bedrock API key is read from, in order (the official SDK's).
const BEDROCK_API_KEY_ENV: [&str; 2] = ["AWS_BEARER_TOKEN_BEDROCK", "ANTHROPIC_AWS_API_KEY"];

/// How requests to Bedrock authenticate.
#[derive(Clone, Debug)]
pub enum BedrockAuth {
    /// SigV4 signatures with AWS credentials.
    SigV4(AwsCredentials),
    /// SigV4 signatures with the credentials an [`AwsChain`] holds at each request (the
    /// environment, then the shared profile files), renewed before they expire.
    Chain(AwsChain),
    /// A Bedrock API key, sent as `Authorization: Bearer KEY`.
    ApiKey(Secret),
}

impl BedrockAuth {
    /// A Bedrock API key from `AWS_BEARER_TOKEN_BEDROCK`, else `ANTHROPIC_AWS_API_KEY` (the
    /// first set and not blank: as in the official SDKs, an API key in the environment wins),
    /// else [`AwsCredentials::from_env`], else `None`.
    pub fn from_env() -> Option<Self> {
        BEDROCK_API_KEY_ENV
            .iter()
            .find_map(|name| non_empty_env(name))
            .map(|key| Self::ApiKey(Secret::new(key)))
            .or_else(|| AwsCredentials::from_env().map(Self::SigV4))
    }

    /// A Bedrock API key from the environment as [`BedrockAuth::from_env`] reads it, else the
    /// standard chain's local links ([`AwsChain::discover`]: the environment's keys, then the
    /// shared profile files).
    ///
    /// # Errors
    /// Why none of them gave credentials, and where they could come from.
    pub async fn discover(region: &str) -> Result<Self, String> {
        if let Some(key) = BEDROCK_API_KEY_ENV
            .iter()
            .find_map(|name| non_empty_env(name))
        {
            return Ok(Self::ApiKey(Secret::new(key)));
        }
        AwsChain::discover(region)
            .await
            .map(Self::Chain)
            .map_err(|error| {
                format!(
                    "{error}; set AWS_BEARER_TOKEN_BEDROCK (a Bedrock API key), or \
                 AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for \
                 temporary credentials), or name a profile of ~/.aws/credentials in AWS_PROFILE"
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_credential() {
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        let creds = AwsCredentials::new("AKIDEXAMPLE", Secret::new(secret), None);
        for text in [
            format!("{:?}", BedrockAuth::SigV4(creds)),
            format!("{:?}", BedrockAuth::ApiKey(Secret::new("bedrock-api-key"))),
        ] {
            for shown in [secret, "AKIDEXAMPLE", "bedrock-api-key"] {
                assert!(!text.contains(shown), "{text}");
            }
        }
    }
}
