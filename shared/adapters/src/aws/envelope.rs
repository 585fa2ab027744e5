//! Envelope encryption of credentials with KMS.
//!
//! Each record gets its own data key (`GenerateDataKey`, AES-256) and is sealed with
//! AES-256-GCM under it. Only the KMS-encrypted data key is stored beside the ciphertext.
//! The tenant id is both the KMS encryption context and the GCM associated data. So a
//! record copied into another tenant's item cannot be opened: KMS refuses to decrypt its
//! data key for the other context.
//!
//! Stored form: `v1.<data key ciphertext>.<nonce>.<ciphertext and tag>`, each part base64.

use crate::telemetry::error_chain;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use domain::ids::TenantId;
use zeroize::Zeroize;

const CONTEXT_KEY: &str = "tenantId";
const VERSION: &str = "v1";

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("kms: {0}")]
    Kms(String),
    #[error("the sealed value is malformed")]
    Malformed,
    #[error("the sealed value does not open for this tenant")]
    Tampered,
    #[error("encryption failed")]
    Crypto,
}

#[derive(Clone, Debug)]
pub struct Envelopes {
    kms: aws_sdk_kms::Client,
    key_id: String,
}

impl Envelopes {
    pub fn new(kms: aws_sdk_kms::Client, key_id: impl Into<String>) -> Self {
        Self { kms, key_id: key_id.into() }
    }

    pub async fn seal(&self, tenant: &TenantId, plaintext: &[u8]) -> Result<String, EnvelopeError> {
        let (key, wrapped) = self.new_data_key(tenant).await?;
        let (nonce, sealed) = key.seal_with(tenant.as_str().as_bytes(), plaintext)?;
        Ok(format!(
            "{VERSION}.{}.{}.{}",
            B64.encode(wrapped),
            B64.encode(nonce),
            B64.encode(sealed)
        ))
    }

    pub async fn open(&self, tenant: &TenantId, sealed: &str) -> Result<Vec<u8>, EnvelopeError> {
        let mut parts = sealed.split('.');
        let (Some(VERSION), Some(wrapped), Some(nonce), Some(body), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(EnvelopeError::Malformed);
        };
        let decode = |s: &str| B64.decode(s).map_err(|_| EnvelopeError::Malformed);
        let (wrapped, nonce, body) = (decode(wrapped)?, decode(nonce)?, decode(body)?);
        let key = self.data_key(tenant, &wrapped).await?;
        key.open_with(tenant.as_str().as_bytes(), &nonce, body)
    }
}

/// A data key of a tenant's own, for many small values sealed locally (a WhatsApp Web
/// session's keys): KMS is asked once to make it, and once per process to unwrap it.
pub struct DataKey {
    key: LessSafeKey,
    tenant: TenantId,
}

impl DataKey {
    /// Seals `value` for `label` (what the value is: its name is bound to it as associated
    /// data, with the tenant): `nonce || ciphertext and tag`.
    pub fn seal(&self, label: &str, value: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        let aad = format!("{}|{label}", self.tenant);
        let (nonce, sealed) = self.seal_with(aad.as_bytes(), value)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens what [`DataKey::seal`] sealed for the same label.
    pub fn open(&self, label: &str, sealed: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        if sealed.len() < NONCE_LEN {
            return Err(EnvelopeError::Malformed);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let aad = format!("{}|{label}", self.tenant);
        self.open_with(aad.as_bytes(), nonce, body.to_vec())
    }

    fn seal_with(
        &self,
        aad: &[u8],
        value: &[u8],
    ) -> Result<([u8; NONCE_LEN], Vec<u8>), EnvelopeError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| EnvelopeError::Crypto)?;
        let mut sealed = value.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut sealed,
            )
            .map_err(|_| EnvelopeError::Crypto)?;
        Ok((nonce, sealed))
    }

    fn open_with(
        &self,
        aad: &[u8],
        nonce: &[u8],
        mut body: Vec<u8>,
    ) -> Result<Vec<u8>, EnvelopeError> {
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| EnvelopeError::Malformed)?;
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut body)
            .map_err(|_| EnvelopeError::Tampered)?;
        Ok(plain.to_vec())
    }
}

impl Envelopes {
    /// A new data key for `tenant`: the key, and its KMS-wrapped form to store.
    pub async fn new_data_key(
        &self,
        tenant: &TenantId,
    ) -> Result<(DataKey, Vec<u8>), EnvelopeError> {
        let out = self
            .kms
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .encryption_context(CONTEXT_KEY, tenant.as_str())
            .send()
            .await
            .map_err(|e| EnvelopeError::Kms(error_chain(&e)))?;
        let wrapped = out.ciphertext_blob().ok_or(EnvelopeError::Crypto)?.as_ref().to_vec();
        let mut plain = out.plaintext().ok_or(EnvelopeError::Crypto)?.as_ref().to_vec();
        let key = cipher(&plain);
        plain.zeroize();
        Ok((DataKey { key: key?, tenant: tenant.clone() }, wrapped))
    }

    /// Unwraps a stored data key of `tenant` (KMS refuses another tenant's).
    pub async fn data_key(
        &self,
        tenant: &TenantId,
        wrapped: &[u8],
    ) -> Result<DataKey, EnvelopeError> {
        let out = self
            .kms
            .decrypt()
            .ciphertext_blob(Blob::new(wrapped.to_vec()))
            .encryption_context(CONTEXT_KEY, tenant.as_str())
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(se) if se.is_invalid_ciphertext_exception() => EnvelopeError::Tampered,
                _ => EnvelopeError::Kms(error_chain(&e)),
            })?;
        let mut plain = out.plaintext().ok_or(EnvelopeError::Crypto)?.as_ref().to_vec();
        let key = cipher(&plain);
        plain.zeroize();
        Ok(DataKey { key: key?, tenant: tenant.clone() })
    }
}

fn cipher(data_key: &[u8]) -> Result<LessSafeKey, EnvelopeError> {
    UnboundKey::new(&AES_256_GCM, data_key).map(LessSafeKey::new).map_err(|_| EnvelopeError::Crypto)
}
