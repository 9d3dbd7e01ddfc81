-- The certificate of a signing key from a vendor root (`sipmeter portal certify`), carried in
-- every license file the key signs; and each installation's check-in key, registered by Get
-- License, so that only the installation itself can check in.
CREATE TABLE IF NOT EXISTS key_certificates (
    key_id TEXT PRIMARY KEY REFERENCES signing_keys(key_id), certificate TEXT NOT NULL,
    created_at BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS install_keys (
    license_id TEXT NOT NULL REFERENCES licenses(id), install_id TEXT NOT NULL,
    public_key TEXT NOT NULL, registered_at BIGINT NOT NULL,
    PRIMARY KEY (license_id, install_id))
