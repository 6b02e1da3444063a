#!/usr/bin/env python3
"""A SAML 2.0 IdP for authgate's tests, built on pysaml2 (an implementation
nobody on the team wrote) and signing with the xmlsec1 program.

Started by the Rust tests as a plain process:  idp.py WORKDIR [--want-signed]
(--want-signed: pysaml2's want_authn_requests_signed, so it refuses
AuthnRequests without a valid signature by the SP metadata certificate)
It binds 127.0.0.1:0, writes its own keys into WORKDIR, prints
"PORT <n>" on stdout, and serves until killed:

  GET  /health                     "ok"
  GET  /metadata[?variant=nocert|rollover][&sign=main|other|old]
               [&sign_part=main][&valid_until=past|future][&cache=PT5S][&tamper=1]
                                   IdP metadata (pysaml2-generated), XML-signed
                                   when sign= is given
  POST /metadata-options           defaults for those query options
                                   (body: a query string; "" = none)
  POST /sp-metadata                register the SP's metadata (body: XML)
  POST /metadata-variant           the variant /metadata serves by default
                                   (body: "" or "rollover": IdP key rollover)
  GET  /sso/redirect?SAMLRequest=..&RelayState=..&user=..&sign=..&...
                                   HTTP-Redirect binding: parses the
                                   AuthnRequest with pysaml2 and answers
                                   with an auto-posting form (HTTP-POST)
  POST /sso/post                   HTTP-POST binding for AuthnRequests (form
                                   fields as the query parameters above)
       (both: inspect=1 answers "AUTHN-REQUEST <xml>" instead of signing in)
  GET  /idp-initiated?sp=..&relay=..&user=..&...
                                   unsolicited response (no InResponseTo)
  GET  /slo/redirect?SAMLRequest=..  Single Logout from the SP: pysaml2 parses
                                   the LogoutRequest, the query signature is
                                   checked with pysaml2's verifier against the
                                   SP metadata certificate (403 if unsigned or
                                   wrong), then 302 back with a LogoutResponse
                                   (query-signed with key=main, or
                                   respond_key=other|none)
  GET  /slo/redirect?SAMLResponse=..  the SP's answer to our LogoutRequest:
                                   "SLO-RESPONSE verified=.. status=.."
  GET  /idp-logout?sp=..&user=..&binding=redirect|post&key=main|other|none
                  &index=known|none|bogus&nameid=..&relay=..
                                   IdP-initiated logout: a LogoutRequest for
                                   the user (with the SessionIndexes the IdP
                                   issued to it) sent to the SP's SLO service

The "browser" (the Rust test) picks the scenario with extra query
parameters, as a user would by logging in as someone:
  user   alice | okta | entra | noemail | evil | deact | outsider |
         overage | overage_roles (Entra groups overage) | shared
  sign   assertion (default) | response | both | none
  alg    sha256 (default) | sha1
  key    main (default) | old (second metadata certificate) | other (a key
         the metadata does not list)
  pre    comma list of changes made BEFORE signing (what a misconfigured
         or hostile-but-trusted IdP could send)
  post   one change made AFTER signing: the attacks (see ATTACKS below)
  enc    encrypt the assertion (after signing it, before signing the
         Response), with xmlsec1 through pysaml2's encrypt_assertion:
         aes128-cbc | aes256-cbc | aes128-gcm | aes256-gcm | 3des
  enc_to sp (default: the first encryption certificate of the SP's
         registered metadata) | other (a certificate the SP does not have)
  enc_key  oaep (default: rsa-oaep-mgf1p) | rsa15 (RSA PKCS#1 v1.5)

Attack crafting is kept here, in the fixture, and each one is commented.
"""

import base64
import datetime
import html
import os
import shutil
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, saml
from saml2.config import IdPConfig
from saml2.metadata import create_metadata_string
from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NAMEID_FORMAT_PERSISTENT
from saml2.server import Server
from saml2.s_utils import deflate_and_base64_encode
from saml2.sigver import RSA_1_5, RSA_OAEP_MGF1P, pre_encryption_part, pre_signature_part, verify_redirect_signature
from cryptography.hazmat.primitives.asymmetric import padding

NS = {
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "md": "urn:oasis:names:tc:SAML:2.0:metadata",
}
SAML = "{%s}" % NS["saml"]
SAMLP = "{%s}" % NS["samlp"]

# Attribute styles: (Name, values) pairs as each IdP family sends them.
USERS = {
    # The names the Label Studio Enterprise documentation asks for.
    "alice": ("alice@example.com", NAMEID_FORMAT_EMAILADDRESS, [
        ("Email", ["alice@example.com"]),
        ("FirstName", ["Alice"]),
        ("LastName", ["Liddell"]),
        ("Groups", ["ls-administrators", "team-a"]),
    ]),
    # Okta's defaults.
    "okta": ("00u1okta", NAMEID_FORMAT_PERSISTENT, [
        ("email", ["olga@example.com"]),
        ("firstName", ["Olga"]),
        ("lastName", ["Okta"]),
        ("groups", ["ls-reviewers", "team-a"]),
    ]),
    # Entra ID / AD FS claim URIs.
    "entra": ("entra-object-id-1", NAMEID_FORMAT_PERSISTENT, [
        ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress", ["erin@example.com"]),
        ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname", ["Erin"]),
        ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname", ["Entra"]),
        ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name", ["erin@example.onmicrosoft.com"]),
        ("http://schemas.microsoft.com/ws/2008/06/identity/claims/groups", ["ls-annotators"]),
        ("http://schemas.microsoft.com/ws/2008/06/identity/claims/role", ["team-b"]),
    ]),
    "noemail": ("persistent-no-email", NAMEID_FORMAT_PERSISTENT, [
        ("FirstName", ["Nemo"]),
        ("Groups", ["ls-annotators"]),
    ]),
    # The IdP signed this NameID for a user who registered it; see
    # ATTACK comment_nameid.
    "evil": ("user@evil.com.example.com", NAMEID_FORMAT_EMAILADDRESS, [
        ("Email", ["user@evil.com.example.com"]),
        ("Groups", ["ls-annotators"]),
    ]),
    "deact": ("dan@example.com", NAMEID_FORMAT_EMAILADDRESS, [
        ("Email", ["dan@example.com"]),
        ("Groups", ["ls-deactivated", "ls-annotators"]),
    ]),
    "outsider": ("olly@other.org", NAMEID_FORMAT_EMAILADDRESS, [
        ("Email", ["olly@other.org"]),
        ("Groups", ["ls-annotators"]),
    ]),
    # Entra ID "groups overage" (SAML token claims reference: above 150
    # groups the groups claim is left out and this link to Microsoft Graph
    # takes its place).
    "overage": ("entra-object-id-2", NAMEID_FORMAT_PERSISTENT, [
        ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress", ["owen@example.com"]),
        ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname", ["Owen"]),
        ("http://schemas.microsoft.com/claims/groups.link",
         ["https://graph.windows.net/tenant-id-1/users/entra-object-id-2/getMemberObjects"]),
    ]),
    # The same, with app-role claims still sent: they alone would grant a
    # role (annotator) while the groups that may say more are missing.
    "overage_roles": ("entra-object-id-3", NAMEID_FORMAT_PERSISTENT, [
        ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress", ["rose@example.com"]),
        ("http://schemas.microsoft.com/ws/2008/06/identity/claims/role", ["ls-annotators"]),
        ("http://schemas.microsoft.com/claims/groups.link",
         ["https://graph.microsoft.com/v1.0/users/entra-object-id-3/getMemberObjects"]),
    ]),
    # One NameID with both attribute styles, so it signs in at either IdP
    # of a two-IdP gate (another IdP may issue the same NameID).
    "shared": ("sam@example.com", NAMEID_FORMAT_EMAILADDRESS, [
        ("Email", ["sam@example.com"]),
        ("email", ["sam@example.com"]),
        ("Groups", ["ls-annotators"]),
        ("groups", ["ls-annotators"]),
    ]),
}

SIGN_ALGS = {
    "sha256": ("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", "http://www.w3.org/2001/04/xmlenc#sha256"),
    "sha1": ("http://www.w3.org/2000/09/xmldsig#rsa-sha1", "http://www.w3.org/2000/09/xmldsig#sha1"),
}

# enc= value -> (EncryptionMethod of the content, xmlsec1 --session-key)
ENC_ALGS = {
    "aes128-cbc": ("http://www.w3.org/2001/04/xmlenc#aes128-cbc", "aes-128"),
    "aes256-cbc": ("http://www.w3.org/2001/04/xmlenc#aes256-cbc", "aes-256"),
    "aes128-gcm": ("http://www.w3.org/2009/xmlenc11#aes128-gcm", "aes-128"),
    "aes256-gcm": ("http://www.w3.org/2009/xmlenc11#aes256-gcm", "aes-256"),
    "3des": ("http://www.w3.org/2001/04/xmlenc#tripledes-cbc", "des-192"),
}
KEY_TRANSPORT = {"oaep": RSA_OAEP_MGF1P, "rsa15": RSA_1_5}


def make_key(workdir, name):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"test idp {name}")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    key_path = os.path.join(workdir, f"{name}.key")
    cert_path = os.path.join(workdir, f"{name}.crt")
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    b64 = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    return key_path, cert_path, b64


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


class Idp:
    def __init__(self, workdir, port, want_signed=False):
        self.workdir = workdir
        self.base = f"http://127.0.0.1:{port}"
        self.keys = {name: make_key(workdir, name) for name in ("main", "old", "other")}
        conf = {
            "entityid": self.base + "/metadata",
            "service": {
                "idp": {
                    "name": "authgate test IdP",
                    "endpoints": {
                        "single_sign_on_service": [
                            (self.base + "/sso/redirect", BINDING_HTTP_REDIRECT),
                            (self.base + "/sso/post", BINDING_HTTP_POST),
                        ],
                        "single_logout_service": [(self.base + "/slo/redirect", BINDING_HTTP_REDIRECT)],
                    },
                    "name_id_format": [NAMEID_FORMAT_EMAILADDRESS, NAMEID_FORMAT_PERSISTENT],
                    "want_authn_requests_signed": want_signed,
                    "policy": {"default": {"lifetime": {"minutes": 5}}},
                },
            },
            "key_file": self.keys["main"][0],
            "cert_file": self.keys["main"][1],
            "xmlsec_binary": shutil.which("xmlsec1"),
            "metadata": {},
        }
        cfg = IdPConfig()
        cfg.load(conf)
        self.cfg = cfg
        self.server = Server(config=cfg)
        self.lock = threading.Lock()
        self.sp_files = 0
        # NameID text -> SessionIndexes issued to it (for IdP-initiated SLO).
        self.sessions = {}
        self.default_variant = ""
        self.metadata_options = {}
        self.sp_paths = {}

    # ---- metadata ----
    def metadata(self, variant, q=None):
        """The metadata; q (query options, over the defaults POSTed to
        /metadata-options): sign=main|other|old (XML-sign the
        EntityDescriptor with that key, enveloped, rsa-sha256),
        valid_until=past|future, cache=<xs:duration>, tamper=1 (change the
        SSO location after signing)."""
        q = {**self.metadata_options, **(q or {})}
        xml = create_metadata_string(None, config=self.cfg)
        root = etree.fromstring(xml)
        now = datetime.datetime.now(datetime.timezone.utc)
        if q.get("valid_until") == "past":
            root.set("validUntil", iso(now - datetime.timedelta(days=1)))
        elif q.get("valid_until") == "future":
            root.set("validUntil", iso(now + datetime.timedelta(days=30)))
        if q.get("cache"):
            root.set("cacheDuration", q["cache"])
        idpsso = root.find("md:IDPSSODescriptor", NS)
        if variant == "nocert":
            for kd in idpsso.findall("md:KeyDescriptor", NS):
                idpsso.remove(kd)
        elif variant == "rollover":
            # Certificate rollover: the old certificate is still listed.
            kd = idpsso.find("md:KeyDescriptor", NS)
            old = etree.fromstring(etree.tostring(kd))
            old.find(".//ds:X509Certificate", NS).text = self.keys["old"][2]
            idpsso.insert(idpsso.index(kd) + 1, old)
        if q.get("sign_part"):
            # Only the IDPSSODescriptor signed: the entityID around it is not.
            root = etree.fromstring(self.sign_metadata(root, self.keys[q["sign_part"]], part=True))
        elif q.get("sign", "none") != "none":
            root = etree.fromstring(self.sign_metadata(root, self.keys[q["sign"]]))
            if q.get("tamper"):
                # Redirect sign-ins elsewhere after signing.
                sso = root.find("md:IDPSSODescriptor/md:SingleSignOnService", NS)
                sso.set("Location", "https://attacker.example.com/sso")
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    def sign_metadata(self, root, key, part=False):
        """An enveloped XML signature over the EntityDescriptor (by ID),
        made by xmlsec1 through pysaml2, as federations sign metadata
        (part=True: over its IDPSSODescriptor only)."""
        mid = "_md" + os.urandom(8).hex()
        el = root.find("md:IDPSSODescriptor", NS) if part else root
        el.set("ID", mid)
        alg = SIGN_ALGS["sha256"]
        sig = pre_signature_part(mid, key[2], sign_alg=alg[0], digest_alg=alg[1])
        # ds:Signature is the element's first child (metadata schema).
        el.insert(0, etree.fromstring(sig.to_string(nspair={"ds": NS["ds"]})))
        name = "IDPSSODescriptor" if part else "EntityDescriptor"
        signed = self.server.sec.sign_statement(
            etree.tostring(root).decode(), f"{NS['md']}:{name}", key_file=key[0], node_id=mid)
        return signed.encode() if isinstance(signed, str) else signed

    def register_sp(self, xml):
        with self.lock:
            self.sp_files += 1
            path = os.path.join(self.workdir, f"sp{self.sp_files}.xml")
        with open(path, "wb") as f:
            f.write(xml)
        # A new copy of an SP's metadata replaces the old one (key rollover).
        entity = etree.fromstring(xml).get("entityID")
        with self.lock:
            old = self.sp_paths.get(entity)
            self.sp_paths[entity] = path
        if old is not None:
            self.server.metadata.metadata.pop(old, None)
        self.server.metadata.load("local", path)

    # ---- responses ----
    def response(self, q, in_response_to, sp_entity_id, acs):
        user = USERS[q.get("user", "alice")]
        nameid_text, nameid_format, attrs = user
        resp = self.server.create_authn_response(
            identity={},
            in_response_to=in_response_to,
            destination=acs,
            sp_entity_id=sp_entity_id,
            name_id=saml.NameID(format=nameid_format, text=nameid_text),
            authn={"class_ref": saml.AUTHN_PASSWORD_PROTECTED, "authn_auth": self.base},
            sign_response=False,
            sign_assertion=False,
        )
        root = etree.fromstring(str(resp).encode())
        assertion = root.find("saml:Assertion", NS)
        # The attribute statement in the style of the chosen IdP family.
        for st in assertion.findall("saml:AttributeStatement", NS):
            assertion.remove(st)
        st = etree.SubElement(assertion, SAML + "AttributeStatement")
        for name, values in attrs:
            a = etree.SubElement(st, SAML + "Attribute", Name=name)
            for v in values:
                etree.SubElement(a, SAML + "AttributeValue").text = v
        st = assertion.find("saml:AuthnStatement", NS)
        if st is not None and st.get("SessionIndex"):
            with self.lock:
                self.sessions.setdefault(nameid_text, []).append(st.get("SessionIndex"))
        for change in filter(None, q.get("pre", "").split(",")):
            pre_sign(change, root, assertion, q)
        xml = etree.tostring(root)
        sign = q.get("sign", "assertion")
        alg = SIGN_ALGS[q.get("alg", "sha256")]
        key = self.keys[q.get("key", "main")]
        if sign in ("assertion", "both"):
            xml = self.sign(xml, "Assertion", assertion.get("ID"), key, alg)
        if q.get("enc"):
            # The assertion as signed, for the attacks that add it back.
            q["_plain"] = etree.tostring(etree.fromstring(xml).find("saml:Assertion", NS))
            xml = self.encrypt(xml, sp_entity_id, q)
        if sign in ("response", "both"):
            xml = self.sign(xml, "Response", root.get("ID"), key, alg)
        post = q.get("post", "")
        if post:
            xml = ATTACKS[post](xml, self, q)
        return xml

    def encrypt(self, xml, sp_entity_id, q):
        """The assertion moved into saml:EncryptedAssertion and encrypted
        there by xmlsec1 (pysaml2's encrypt_assertion), to the SP's
        encryption certificate from its registered metadata."""
        root = etree.fromstring(xml)
        assertion = root.find("saml:Assertion", NS)
        wrapper = etree.Element(SAML + "EncryptedAssertion")
        root.replace(assertion, wrapper)
        wrapper.append(assertion)
        to = q.get("enc_to", "sp")
        if to == "sp":
            certs = self.server.metadata.certs(sp_entity_id, "spsso", "encryption")
            if not certs:
                raise ValueError("the SP metadata has no encryption certificate")
            b64 = "".join(certs[0][1].split())
            with self.lock:
                self.sp_files += 1
                path = os.path.join(self.workdir, f"enc{self.sp_files}.crt")
            der = base64.b64decode(b64)
            with open(path, "wb") as f:
                f.write(x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM))
        else:
            _, path, b64 = self.keys[to]
        msg_alg, session_key = ENC_ALGS[q["enc"]]
        template = pre_encryption_part(
            msg_enc=msg_alg, key_enc=KEY_TRANSPORT[q.get("enc_key", "oaep")], encrypt_cert=b64)
        out = self.server.sec.crypto.encrypt_assertion(
            etree.tostring(root).decode(), path, str(template), session_key)
        return out.encode() if isinstance(out, str) else out

    # ---- single logout ----
    def signed_redirect(self, location, typ, xml, relay, key_name):
        """HTTP-Redirect binding (bindings 3.4.4.1), the query signed with
        RSA-SHA256 by the named key ("none": unsigned)."""
        parts = [(typ, deflate_and_base64_encode(xml).decode())]
        if relay:
            parts.append(("RelayState", relay))
        if key_name != "none":
            parts.append(("SigAlg", SIGN_ALGS["sha256"][0]))
            with open(self.keys[key_name][0], "rb") as f:
                key = serialization.load_pem_private_key(f.read(), None)
            sig = key.sign(urllib.parse.urlencode(parts).encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
            parts.append(("Signature", base64.b64encode(sig).decode()))
        glue = "&" if "?" in location else "?"
        return location + glue + urllib.parse.urlencode(parts)

    def sp_signature_ok(self, q, issuer):
        """The SP's query signature, checked by pysaml2 against the
        certificates of the SP's registered metadata."""
        if "Signature" not in q or "SigAlg" not in q:
            return False
        msg = {k: q[k] for k in ("SAMLRequest", "SAMLResponse", "RelayState", "SigAlg", "Signature") if k in q}
        certs = self.server.metadata.certs(issuer, "any", "signing")
        return any(verify_redirect_signature(msg, self.server.sec.sec_backend, cert) for _, cert in certs)

    def slo_from_sp(self, q):
        req = self.server.parse_logout_request(q["SAMLRequest"], BINDING_HTTP_REDIRECT)
        msg = req.message
        if not self.sp_signature_ok(q, msg.issuer.text):
            return 403, "LogoutRequest signature missing or invalid"
        resp = self.server.create_logout_response(msg, [BINDING_HTTP_REDIRECT])
        return 302, self.signed_redirect(
            resp.destination, "SAMLResponse", str(resp), q.get("RelayState", ""), q.get("respond_key", "main"))

    def slo_response_from_sp(self, q):
        xml = self.server.unravel(q["SAMLResponse"], BINDING_HTTP_REDIRECT, "logout_response")
        root = etree.fromstring(xml.encode() if isinstance(xml, str) else xml)
        issuer = root.find("saml:Issuer", NS).text
        status = root.find("samlp:Status/samlp:StatusCode", NS).get("Value")
        ok = self.sp_signature_ok(q, issuer)
        return f"SLO-RESPONSE verified={ok} status={status} irt={root.get('InResponseTo')} relay={q.get('RelayState', '')}"

    def idp_logout(self, q):
        sp = q["sp"]
        nameid_text, nameid_format, _ = USERS[q.get("user", "alice")]
        nameid_text = q.get("nameid", nameid_text)
        index = q.get("index", "known")
        indexes = {"known": self.sessions.get(nameid_text, []), "none": [], "bogus": ["_bogus"]}[index]
        dest = self.server.metadata.single_logout_service(sp, BINDING_HTTP_REDIRECT, "spsso")[0]["location"]
        req_id, req = self.server.create_logout_request(
            dest, sp, name_id=saml.NameID(format=nameid_format, text=nameid_text),
            session_indexes=indexes or None, sign=False)
        xml = str(req).encode()
        key_name = q.get("key", "main")
        if q.get("binding", "redirect") == "post":
            if key_name != "none":
                xml = self.sign(xml, "LogoutRequest", req.id, self.keys[key_name], SIGN_ALGS["sha256"])
            value = base64.b64encode(xml).decode()
            page = (
                "<!doctype html><html><body onload=\"document.forms[0].submit()\">"
                f"<form method=\"post\" action=\"{html.escape(dest)}\">"
                f"<input type=\"hidden\" name=\"SAMLRequest\" value=\"{value}\"/>"
                f"<input type=\"hidden\" name=\"RelayState\" value=\"{html.escape(q.get('relay', ''))}\"/>"
                "</form></body></html>"
            ).encode()
            return 200, page
        return 302, self.signed_redirect(dest, "SAMLRequest", xml, q.get("relay", ""), key_name)

    def sign(self, xml, tag, elem_id, key, alg):
        root = etree.fromstring(xml)
        el = root if etree.QName(root).localname == tag else root.find("saml:" + tag, NS)
        sig = pre_signature_part(elem_id, key[2], sign_alg=alg[0], digest_alg=alg[1])
        sig_el = etree.fromstring(sig.to_string(nspair={"ds": NS["ds"]}))
        issuer = el.find("saml:Issuer", NS)
        el.insert(el.index(issuer) + 1, sig_el)
        ns = NS["saml"] if tag == "Assertion" else NS["samlp"]
        signed = self.server.sec.sign_statement(
            etree.tostring(root).decode(), f"{ns}:{tag}", key_file=key[0], node_id=elem_id
        )
        return signed.encode() if isinstance(signed, str) else signed


def pre_sign(change, root, assertion, q):
    """Changes made before signing: the IdP itself says something wrong."""
    now = datetime.datetime.now(datetime.timezone.utc)
    scd = assertion.find("saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData", NS)
    cond = assertion.find("saml:Conditions", NS)
    if change == "no_audience":
        for ar in cond.findall("saml:AudienceRestriction", NS):
            cond.remove(ar)
    elif change == "no_conditions":
        assertion.remove(cond)
    elif change == "wrong_audience":
        cond.find("saml:AudienceRestriction/saml:Audience", NS).text = "https://other-app.example.com/sp"
    elif change == "wrong_recipient":
        scd.set("Recipient", "https://other-app.example.com/acs")
    elif change == "wrong_destination":
        root.set("Destination", "https://other-app.example.com/acs")
    elif change == "wrong_issuer":
        assertion.find("saml:Issuer", NS).text = "https://impostor.example.com/idp"
        root.find("saml:Issuer", NS).text = "https://impostor.example.com/idp"
    elif change == "issuer_as":
        # Claim to be another IdP (q["as"]: its entity ID), signed with our key.
        assertion.find("saml:Issuer", NS).text = q["as"]
        root.find("saml:Issuer", NS).text = q["as"]
    elif change == "wrong_response_issuer":
        root.find("saml:Issuer", NS).text = "https://impostor.example.com/idp"
    elif change == "expired":
        past = iso(now - datetime.timedelta(minutes=10))
        cond.set("NotOnOrAfter", past)
        scd.set("NotOnOrAfter", past)
    elif change == "scd_expired":
        scd.set("NotOnOrAfter", iso(now - datetime.timedelta(minutes=10)))
    elif change == "not_yet":
        cond.set("NotBefore", iso(now + datetime.timedelta(minutes=10)))
    elif change == "future_issue":
        t = iso(now + datetime.timedelta(minutes=10))
        assertion.set("IssueInstant", t)
        root.set("IssueInstant", t)
    elif change == "old_issue":
        t = iso(now - datetime.timedelta(minutes=30))
        assertion.set("IssueInstant", t)
        root.set("IssueInstant", t)
    elif change == "status_fail":
        sc = root.find("samlp:Status/samlp:StatusCode", NS)
        sc.set("Value", "urn:oasis:names:tc:SAML:2.0:status:Responder")
        etree.SubElement(sc, SAMLP + "StatusCode", Value="urn:oasis:names:tc:SAML:2.0:status:AuthnFailed")
    elif change == "irt":
        # Answer a request this browser never started.
        root.set("InResponseTo", q["irt"])
        scd.set("InResponseTo", q["irt"])
    elif change == "no_irt":
        root.attrib.pop("InResponseTo", None)
        scd.attrib.pop("InResponseTo", None)
    else:
        raise ValueError(change)


# ---- ATTACKS: changes made AFTER signing, by someone holding a genuine
# signed response (their own) who wants to become somebody else. ----

def _parse(xml):
    return etree.fromstring(xml)


def _forged_assertion(signed_assertion, email):
    """An unsigned copy of the assertion, rewritten for the victim."""
    forged = etree.fromstring(etree.tostring(signed_assertion))
    sig = forged.find("ds:Signature", NS)
    if sig is not None:
        forged.remove(sig)
    forged.set("ID", "_forged" + signed_assertion.get("ID"))
    forged.find("saml:Subject/saml:NameID", NS).text = email
    for v in forged.iter(SAML + "AttributeValue"):
        if "@" in (v.text or ""):
            v.text = email
    return forged


def attack_tamper_attr(xml, idp, q):
    # Change a signed attribute value (a group) after signing.
    root = _parse(xml)
    for a in root.iter(SAML + "Attribute"):
        if a.get("Name") in ("Groups", "groups"):
            a.find("saml:AttributeValue", NS).text = "ls-administrators-forged"
    return etree.tostring(root)


def attack_comment_nameid(xml, idp, q):
    # Insert an XML comment into the signed NameID: exclusive c14n drops
    # comments, so the signature still verifies; a naive reader that
    # takes the first text node would see "user@evil.com".
    root = _parse(xml)
    for el in root.iter(SAML + "NameID"):
        text = el.text
        el.text = "user@evil.com"
        c = etree.Comment("")
        c.tail = text[len("user@evil.com"):]
        el.append(c)
    return etree.tostring(root)


def attack_xsw_before(xml, idp, q):
    # XSW: an unsigned forged assertion inserted BEFORE the signed one.
    root = _parse(xml)
    signed = root.find("saml:Assertion", NS)
    root.insert(root.index(signed), _forged_assertion(signed, "victim@example.com"))
    return etree.tostring(root)


def attack_xsw_after(xml, idp, q):
    # XSW: an unsigned forged assertion appended AFTER the signed one.
    root = _parse(xml)
    signed = root.find("saml:Assertion", NS)
    root.insert(root.index(signed) + 1, _forged_assertion(signed, "victim@example.com"))
    return etree.tostring(root)


def attack_xsw_extension(xml, idp, q):
    # XSW: the signed assertion is moved into samlp:Extensions (where the
    # signature reference still finds it by ID) and a forged one takes
    # its place.
    root = _parse(xml)
    signed = root.find("saml:Assertion", NS)
    forged = _forged_assertion(signed, "victim@example.com")
    root.replace(signed, forged)
    ext = etree.Element(SAMLP + "Extensions")
    ext.append(signed)
    root.insert(root.index(root.find("saml:Issuer", NS)) + 1, ext)
    return etree.tostring(root)


def attack_xsw_wrap(xml, idp, q):
    # XSW: the forged assertion carries the signed one inside itself (in
    # its Subject's place of an Advice), so a reader that checks "some
    # signed assertion exists" but reads the outer one is fooled.
    root = _parse(xml)
    signed = root.find("saml:Assertion", NS)
    forged = _forged_assertion(signed, "victim@example.com")
    advice = etree.SubElement(forged, SAML + "Advice")
    root.replace(signed, forged)
    advice.append(signed)
    return etree.tostring(root)


def attack_id_collision(xml, idp, q):
    # ID collision: the forged assertion takes the signed one's ID, so a
    # by-ID lookup may verify one and read the other.
    root = _parse(xml)
    signed = root.find("saml:Assertion", NS)
    forged = _forged_assertion(signed, "victim@example.com")
    forged.set("ID", signed.get("ID"))
    root.insert(root.index(signed), forged)
    return etree.tostring(root)


def attack_doctype(xml, idp, q):
    # A DOCTYPE with an internal entity (billion-laughs / XXE vector).
    body = xml.decode()
    if body.startswith("<?xml"):
        body = body[body.index("?>") + 2:]
    return ('<!DOCTYPE samlp:Response [<!ENTITY e "x">]>' + body).encode()


def attack_strip_signature(xml, idp, q):
    # Remove every signature and change the user.
    root = _parse(xml)
    for s in list(root.iter("{%s}Signature" % NS["ds"])):
        s.getparent().remove(s)
    root.find("saml:Assertion/saml:Subject/saml:NameID", NS).text = "victim@example.com"
    return etree.tostring(root)


def attack_tamper_cipher(xml, idp, q):
    # Flip one bit of the encrypted content (not of the encrypted key).
    root = _parse(xml)
    xenc = "{http://www.w3.org/2001/04/xmlenc#}"
    data = root.find(f"saml:EncryptedAssertion/{xenc}EncryptedData", NS)
    cv = data.find(f"{xenc}CipherData/{xenc}CipherValue")
    raw = bytearray(base64.b64decode("".join(cv.text.split())))
    raw[len(raw) // 2] ^= 0x01
    cv.text = base64.b64encode(bytes(raw)).decode()
    return etree.tostring(root)


def attack_enc_plus_plain(xml, idp, q):
    # The genuine signed assertion, in plain, next to its encrypted copy.
    root = _parse(xml)
    enc = root.find("saml:EncryptedAssertion", NS)
    root.insert(root.index(enc) + 1, etree.fromstring(q["_plain"]))
    return etree.tostring(root)


def attack_enc_plus_forged(xml, idp, q):
    # An unsigned forged plain assertion before the encrypted one.
    root = _parse(xml)
    enc = root.find("saml:EncryptedAssertion", NS)
    root.insert(root.index(enc), _forged_assertion(etree.fromstring(q["_plain"]), "victim@example.com"))
    return etree.tostring(root)


ATTACKS = {
    "tamper_cipher": attack_tamper_cipher,
    "enc_plus_plain": attack_enc_plus_plain,
    "enc_plus_forged": attack_enc_plus_forged,
    "tamper_attr": attack_tamper_attr,
    "comment_nameid": attack_comment_nameid,
    "xsw_before": attack_xsw_before,
    "xsw_after": attack_xsw_after,
    "xsw_extension": attack_xsw_extension,
    "xsw_wrap": attack_xsw_wrap,
    "id_collision": attack_id_collision,
    "doctype": attack_doctype,
    "strip_signature": attack_strip_signature,
}


def auto_post(acs, saml_response, relay_state):
    value = base64.b64encode(saml_response).decode()
    return (
        "<!doctype html><html><body onload=\"document.forms[0].submit()\">"
        f"<form method=\"post\" action=\"{html.escape(acs)}\">"
        f"<input type=\"hidden\" name=\"SAMLResponse\" value=\"{value}\"/>"
        f"<input type=\"hidden\" name=\"RelayState\" value=\"{html.escape(relay_state or '')}\"/>"
        "<noscript><button type=\"submit\">Continue</button></noscript>"
        "</form></body></html>"
    ).encode()


def make_handler(idp):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, status, body, ctype="text/html; charset=utf-8"):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def redirect(self, location):
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def sso(self, q, binding):
            try:
                req = idp.server.parse_authn_request(
                    q["SAMLRequest"], binding, relay_state=q.get("RelayState"),
                    sigalg=q.get("SigAlg"), signature=q.get("Signature"))
            except Exception as e:  # IncorrectlySigned when signatures are wanted
                return self.reply(403, f"{type(e).__name__}: {e}".encode(), "text/plain")
            msg = req.message
            if q.get("inspect"):
                return self.reply(200, f"AUTHN-REQUEST {req.xmlstr}".encode(), "text/plain")
            sp = msg.issuer.text
            acs = msg.assertion_consumer_service_url
            # Post only to an ACS the SP's metadata lists.
            known = [e["location"] for e in idp.server.metadata.assertion_consumer_service(sp, BINDING_HTTP_POST)]
            if acs not in known:
                return self.reply(400, f"ACS {acs} not in SP metadata {known}".encode(), "text/plain")
            xml = idp.response(q, msg.id, sp, acs)
            return self.reply(200, auto_post(acs, xml, q.get("RelayState", "")))

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            q = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
            try:
                if url.path == "/health":
                    return self.reply(200, b"ok", "text/plain")
                if url.path == "/metadata":
                    return self.reply(200, idp.metadata(q.get("variant", idp.default_variant), q), "application/samlmetadata+xml")
                if url.path == "/sso/redirect":
                    return self.sso(q, BINDING_HTTP_REDIRECT)
                if url.path == "/slo/redirect" and "SAMLRequest" in q:
                    status, where = idp.slo_from_sp(q)
                    if status != 302:
                        return self.reply(status, where.encode(), "text/plain")
                    return self.redirect(where)
                if url.path == "/slo/redirect" and "SAMLResponse" in q:
                    return self.reply(200, idp.slo_response_from_sp(q).encode(), "text/plain")
                if url.path == "/idp-logout":
                    status, out = idp.idp_logout(q)
                    return self.redirect(out) if status == 302 else self.reply(status, out)
                if url.path == "/idp-initiated":
                    sp = q["sp"]
                    acs = idp.server.metadata.assertion_consumer_service(sp, BINDING_HTTP_POST)[0]["location"]
                    xml = idp.response(q, None, sp, acs)
                    return self.reply(200, auto_post(acs, xml, q.get("relay", "")))
                return self.reply(404, b"not found", "text/plain")
            except Exception as e:  # the test reads the reason
                return self.reply(500, f"{type(e).__name__}: {e}".encode(), "text/plain")

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            if self.path == "/metadata-variant":
                idp.default_variant = body.decode()
                return self.reply(200, b"ok", "text/plain")
            if self.path == "/metadata-options":
                idp.metadata_options = dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
                return self.reply(200, b"ok", "text/plain")
            if self.path == "/sso/post":
                q = dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
                try:
                    return self.sso(q, BINDING_HTTP_POST)
                except Exception as e:
                    return self.reply(500, f"{type(e).__name__}: {e}".encode(), "text/plain")
            if self.path == "/sp-metadata":
                try:
                    idp.register_sp(body)
                except Exception as e:
                    return self.reply(400, f"{type(e).__name__}: {e}".encode(), "text/plain")
                return self.reply(200, b"registered", "text/plain")
            return self.reply(404, b"not found", "text/plain")

    return Handler


def main():
    workdir = sys.argv[1]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), None)
    port = httpd.server_address[1]
    idp = Idp(workdir, port, want_signed="--want-signed" in sys.argv[2:])
    httpd.RequestHandlerClass = make_handler(idp)
    print(f"PORT {port}", flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    main()
