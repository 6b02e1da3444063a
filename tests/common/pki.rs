//! Test certificates made with `openssl` (scripts/test installs it): a CA,
//! a second CA that signed nothing here, and a server certificate for
//! 127.0.0.1 and localhost; a self-signed server certificate; and a fixed
//! PEM for configurations that only need a well-formed CA file.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::process::run;

/// `openssl ARGS` in `dir`; panics with its output unless it succeeds.
pub fn openssl(dir: &Path, args: &[&str]) {
    run(Command::new("openssl").current_dir(dir).args(args));
}

/// `NAME.pem` and `NAME.key` in `dir`: a P-256 CA valid for three days.
pub fn make_ca(dir: &Path, name: &str) -> PathBuf {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "3",
            "-subj",
            &format!("/CN=authgate test {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    dir.join(format!("{name}.pem"))
}

/// Writes into `dir`: `ca.pem`/`ca.key`, `wrong-ca.pem`/`wrong-ca.key` (a
/// CA that signed nothing), and `server.pem`/`server.key`, signed by
/// `ca.pem`, for IP 127.0.0.1 and DNS localhost.
pub fn write_ca_and_server(dir: &Path) {
    make_ca(dir, "ca");
    make_ca(dir, "wrong-ca");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "3",
            "-extfile",
            "server.ext",
        ],
    );
}

/// [`write_ca_and_server`] in a private temp dir.
pub struct Pki {
    pub dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        write_ca_and_server(dir.path());
        Pki { dir }
    }

    /// A file of the set (`ca.pem`, `wrong-ca.pem`, `server.pem`, ...).
    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// Writes a self-signed end-entity certificate for localhost and 127.0.0.1
/// (not a CA: webpki refuses a CA certificate as a server certificate) and
/// its key: (`tls.crt`, `tls.key`) in `dir`.
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let cert = dir.join("tls.crt");
    let key = dir.join("tls.key");
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "keyUsage=critical,digitalSignature",
            "-addext",
            "extendedKeyUsage=serverAuth",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    (cert, key)
}

/// A real CA certificate (CN ldap.example.com, valid until 2126), for
/// configurations that only need a well-formed CA file, such as the one
/// `AUTH_LDAP_CONNECTION_OPTIONS`' OPT_X_TLS_CACERTFILE names.
pub const CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBjjCCATOgAwIBAgIUMmNtBHYLjvi4SQMz3Fd4URUyYlUwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQbGRhcC5leGFtcGxlLmNvbTAgFw0yNjExMjkxNzQzMDdaGA8y
MTI2MTEwNTE3NDMwN1owGzEZMBcGA1UEAwwQbGRhcC5leGFtcGxlLmNvbTBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABCXCRAxqOGxE+Tx3/0tS9dlulnrjaLRHHJ2l
kteEVz0nHRM8t0GTlNy1MYGBlLi8zgbPZFRZ4c6p7WIbHrZUlwujUzBRMB0GA1Ud
DgQWBBTjC0MZgB5IMS6MqetBGPlJ9qVpDzAfBgNVHSMEGDAWgBTjC0MZgB5IMS6M
qetBGPlJ9qVpDzAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0kAMEYCIQD3
adEuMpp+w9uUa2sbqOvny7nmkjQJPqcgTRyUVJ//ZQIhAP1GRdgjE198pDI7VA0M
YimEQDmOKVW+2SJCMTcF3LHs
-----END CERTIFICATE-----
";
