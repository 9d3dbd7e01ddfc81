//! The portal's place in the trust chain: the certificate of its signing key (made offline
//! with a vendor root by `sipmeter portal certify`, carried in every license file it issues)
//! and the check-in keys of the installations it served (registered by Get License, so a
//! check-in is believed only when that installation signed it).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use license::{Certificate, Micros, PublicKey, SigningKey};
use serde::Deserialize;
use sqlx::Row;

use crate::error::{PortalError, Result};
use crate::service::{AuditRow, CheckinRequest, Portal};

/// How far a check-in's own time may be from the portal's: a recorded check-in cannot be
/// replayed for longer, and honest clocks are far closer.
pub const CHECKIN_SKEW_US: Micros = 15 * 60 * 1_000_000;

/// `POST /api/v1/checkin`: the check-in JSON exactly as signed, and the signature.
#[derive(Debug, Deserialize)]
pub struct SignedCheckin {
    pub checkin: String,
    pub signature: String,
}

/// An installation's check-in key, as Get License sends it.
#[derive(Debug, Clone)]
pub struct InstallKey {
    pub install_id: String,
    pub key: PublicKey,
}

impl InstallKey {
    /// Both fields or neither: an install id without a key registers nothing (older servers).
    pub fn from_fields(install_id: Option<&str>, key: Option<&str>) -> Result<Option<InstallKey>> {
        let (Some(id), Some(key)) = (install_id, key) else {
            return Ok(None);
        };
        let install_id = crate::service::text_field("install_id", id)?;
        let key = PublicKey::from_armored(key)
            .map_err(|e| PortalError::bad(format!("install_key: {e}")))?;
        Ok(Some(InstallKey { install_id, key }))
    }
}

impl Portal {
    /// The certificate of the active signing key, if it has one.
    pub async fn active_certificate(&self) -> Result<Option<Certificate>> {
        let row = sqlx::query(
            "SELECT c.certificate FROM signing_keys k JOIN key_certificates c ON c.key_id = k.key_id WHERE k.active = 1",
        )
        .fetch_optional(self.pool())
        .await?;
        let Some(text) = row
            .map(|r| r.try_get::<String, _>("certificate"))
            .transpose()?
        else {
            return Ok(None);
        };
        Certificate::from_armored(&text)
            .map(Some)
            .map_err(|e| PortalError::Corrupt(format!("stored certificate: {e}")))
    }

    /// The certificate license files are issued with; an uncertified key issues nothing,
    /// since no server would accept what it signs.
    pub(crate) async fn issuing_certificate(&self, key: &SigningKey) -> Result<Certificate> {
        let cert = self.active_certificate().await?;
        match cert {
            Some(c) if c.key.id() == key.public().id() => Ok(c),
            _ => Err(PortalError::NoCertificate {
                key_id: key.public().id().to_string(),
                data_dir: self.data_dir().display().to_string(),
            }),
        }
    }

    /// Certifies the active signing key with `root` for `[from, until]` and stores the
    /// certificate (audited). The root's secret is used here and forgotten: only the
    /// certificate reaches the database.
    pub async fn certify_active_key(
        &self,
        who: &str,
        root: &SigningKey,
        subject: &str,
        from: Micros,
        until: Micros,
    ) -> Result<Certificate> {
        let row = sqlx::query("SELECT key_id, public FROM signing_keys WHERE active = 1")
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| PortalError::Corrupt("no active signing key".into()))?;
        let key_id: String = row.try_get("key_id")?;
        let public = PublicKey::from_armored(&row.try_get::<String, _>("public")?)?;
        let cert =
            Certificate::issue(root, &public, subject, from, until).map_err(PortalError::bad)?;
        let now = self.now();
        self.commit_audited(
            vec![
                sqlx::query(
                    "INSERT INTO key_certificates (key_id, certificate, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (key_id) DO UPDATE SET certificate = excluded.certificate, created_at = excluded.created_at",
                )
                .bind(key_id.clone())
                .bind(cert.to_armored())
                .bind(self.now()),
            ],
            AuditRow {
                at: now,
                who,
                action: "certify_key",
                license: None,
                customer: None,
                details: format!(
                    "key {key_id} certified by root {} until {}",
                    cert.terms.issuer, cert.terms.valid_until
                ),
            },
        )
        .await?;
        Ok(cert)
    }

    /// A development portal certifies its own active key with the development root (whose
    /// secret is public), so the whole portal → server flow runs locally. Release builds
    /// have no such root and never do this.
    #[cfg(feature = "dev-keys")]
    pub(crate) async fn certify_for_development(&self) -> Result<()> {
        if self.active_certificate().await?.is_some() {
            return Ok(());
        }
        // Ten years either way: tests move their fake clocks back and forth.
        let now = self.now();
        let ten_years = 10 * 365 * 86_400_000_000;
        self.certify_active_key(
            "portal",
            &license::dev_root_signing_key(),
            "development portal",
            now.saturating_sub(ten_years),
            now.saturating_add(ten_years),
        )
        .await
        .map(|_| ())
    }

    /// Registers (or replaces) an installation's check-in key for a license; only a caller
    /// that holds the license token gets here.
    pub(crate) async fn register_install(
        &self,
        license_id: &str,
        install: &InstallKey,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO install_keys (license_id, install_id, public_key, registered_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (license_id, install_id) DO UPDATE SET public_key = excluded.public_key, registered_at = excluded.registered_at",
        )
        .bind(license_id.to_string())
        .bind(install.install_id.clone())
        .bind(install.key.to_armored())
        .bind(self.now())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The check-in a registered installation signed, or why it is not believed.
    pub(crate) async fn open_checkin(&self, signed: &SignedCheckin) -> Result<CheckinRequest> {
        let req: CheckinRequest = serde_json::from_str(&signed.checkin)
            .map_err(|e| PortalError::bad(format!("checkin: {e}")))?;
        let row = sqlx::query(
            "SELECT public_key FROM install_keys WHERE license_id = $1 AND install_id = $2",
        )
        .bind(req.license_id.clone())
        .bind(req.install_id.clone())
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            self.license(&req.license_id).await.map_err(|e| match e {
                PortalError::NotFound(_) => PortalError::UnknownLicense(req.license_id.clone()),
                e => e,
            })?;
            return Err(PortalError::UnregisteredInstall {
                license: req.license_id,
                install: req.install_id,
            });
        };
        let key = PublicKey::from_armored(&row.try_get::<String, _>("public_key")?)?;
        let signature: [u8; 64] = STANDARD
            .decode(&signed.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| PortalError::bad("signature: not 64 bytes of base64"))?;
        if !key.verify_in_context(
            license::CHECKIN_CONTEXT,
            signed.checkin.as_bytes(),
            &signature,
        ) {
            return Err(PortalError::BadCheckinSignature(req.install_id));
        }
        let at: jiff::Timestamp = req
            .at
            .parse()
            .map_err(|_| PortalError::bad("checkin at: not an RFC 3339 instant"))?;
        if (at.as_microsecond() - self.now()).abs() > CHECKIN_SKEW_US {
            return Err(PortalError::StaleCheckin(req.at));
        }
        Ok(req)
    }
}
