//! Trusting a private certificate authority: a server whose HTTPS certificate an organisation's own CA signed, not
//! one of the public web's, is reached by naming that CA's certificate (`--ca-cert`, `SLUICE_CA_CERT`). Workers and
//! the CLI's commands that talk to a server share this.

use std::path::{Path, PathBuf};

use reqwest::{Certificate, ClientBuilder};

/// A CA certificate file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaCertError {
    #[error("cannot read the CA certificate {}: {error}", path.display())]
    Read { path: PathBuf, error: std::io::Error },
    #[error("the CA certificate {} is not valid PEM: {error}", path.display())]
    Invalid { path: PathBuf, error: reqwest::Error },
    #[error("the CA certificate {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display())]
    Empty { path: PathBuf },
}

/// `builder` trusting the certificates of the PEM file at `path` as well as the public web's CAs.
pub fn trust_ca_cert(builder: ClientBuilder, path: &Path) -> Result<ClientBuilder, CaCertError> {
    let pem = std::fs::read(path).map_err(|error| CaCertError::Read { path: path.to_owned(), error })?;
    let certs =
        Certificate::from_pem_bundle(&pem).map_err(|error| CaCertError::Invalid { path: path.to_owned(), error })?;
    if certs.is_empty() {
        return Err(CaCertError::Empty { path: path.to_owned() });
    }
    Ok(certs.into_iter().fold(builder, ClientBuilder::add_root_certificate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_a_certificate_is_refused_with_its_name() {
        let dir = std::env::temp_dir().join(format!("sluice-ca-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let key_only = dir.join("key.pem");
        std::fs::write(&key_only, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").expect("write");
        let err = trust_ca_cert(reqwest::Client::builder(), &key_only).expect_err("no certificate");
        assert!(matches!(err, CaCertError::Empty { .. }), "{err}");
        assert!(err.to_string().contains("key.pem"), "{err}");

        let missing = dir.join("missing.pem");
        let err = trust_ca_cert(reqwest::Client::builder(), &missing).expect_err("missing");
        assert!(err.to_string().starts_with(&format!("cannot read the CA certificate {}", missing.display())), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
