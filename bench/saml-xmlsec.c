/* bench/saml-xmlsec.c: the two sides of bench/saml that are not authgate,
 * both plain libxmlsec1 (Debian's libxmlsec1-openssl, the library samael
 * links), compiled by bench/saml with
 *   cc -O2 bench/saml-xmlsec.c $(pkg-config --cflags --libs xmlsec1-openssl)
 *
 *   saml-xmlsec sign KEY.pem CERT.pem MODE IDP_ENTITY SP_ENTITY ACS_URL REQS.tsv LOGINS.tsv RESPONSES.b64
 *     The IdP: for each line "REQUEST_ID<TAB>COOKIE" of REQS.tsv, one SAML
 *     Response shaped as the pysaml2 IdP of tests/idp writes it (its own
 *     Response ID, assertion ID and SessionIndex, InResponseTo = REQUEST_ID,
 *     IssueInstant now, valid 5 minutes, Audience SP_ENTITY, Destination and
 *     Recipient ACS_URL, NameID and Email user<n>@example.com, two groups),
 *     signed RSA-SHA256 / SHA-256 / exclusive c14n with the key (and its
 *     certificate in KeyInfo) by xmlSecDSigCtxSign: the assertion
 *     (MODE assertion), the Response (response), or the assertion first and
 *     then the Response around it (both). Writes "COOKIE<TAB>form body"
 *     (SAMLResponse + RelayState, url-encoded, as a browser posts it) to
 *     LOGINS.tsv and the base64 Response alone to RESPONSES.b64.
 *
 *   saml-xmlsec verify KEYMODE CERT.pem RESPONSES.b64 [MIN_CPU_SECONDS]
 *     The floor: for each response (base64-decoded beforehand, not timed),
 *     libxml2 parses it, its two ID attributes are registered, and every
 *     ds:Signature in it is verified by xmlSecDSigCtxVerify with a copy of
 *     the IdP key loaded once (set as the context's signKey, so KeyInfo is
 *     not read). KEYMODE pubkey: the certificate's public key alone (the
 *     copy is a reference count: the strict floor); cert: the key loaded
 *     from the certificate as `xmlsec1 --pubkey-cert-pem` and most
 *     bindings load it, with the X.509 data attached (each copy duplicates
 *     the certificate). Parse + verify and nothing else: no
 *     signature-wrapping defence, no SAML checks. Repeats the list until
 *     MIN_CPU_SECONDS (default 2) of this thread's CPU time have passed.
 *     Every verification must succeed. Prints
 *     "VERIFY n=<count> wall_s=<s> cpu_s=<s>".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/valid.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <xmlsec/xmlsec.h>
#include <xmlsec/xmltree.h>
#include <xmlsec/xmldsig.h>
#include <xmlsec/base64.h>
#include <xmlsec/crypto.h>
#include <xmlsec/openssl/evp.h>

#define SIG_TEMPLATE                                                                            \
    "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:SignedInfo>"             \
    "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>"       \
    "<ds:SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\"/>"    \
    "<ds:Reference URI=\"#%s\"><ds:Transforms>"                                                 \
    "<ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>"      \
    "<ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/></ds:Transforms>"    \
    "<ds:DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/>"                  \
    "<ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo>"                          \
    "<ds:SignatureValue></ds:SignatureValue><ds:KeyInfo><ds:X509Data/></ds:KeyInfo></ds:Signature>"

static const char *RESPONSE_TEMPLATE =
    "<ns0:Response xmlns:ns0=\"urn:oasis:names:tc:SAML:2.0:protocol\" "
    "xmlns:ns1=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"%s\" InResponseTo=\"%s\" "
    "Version=\"2.0\" IssueInstant=\"%s\" Destination=\"%s\">"
    "<ns1:Issuer Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:entity\">%s</ns1:Issuer>%s"
    "<ns0:Status><ns0:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/></ns0:Status>"
    "<ns1:Assertion Version=\"2.0\" ID=\"%s\" IssueInstant=\"%s\">"
    "<ns1:Issuer Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:entity\">%s</ns1:Issuer>%s"
    "<ns1:Subject><ns1:NameID Format=\"urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress\">"
    "user%d@example.com</ns1:NameID>"
    "<ns1:SubjectConfirmation Method=\"urn:oasis:names:tc:SAML:2.0:cm:bearer\">"
    "<ns1:SubjectConfirmationData InResponseTo=\"%s\" NotOnOrAfter=\"%s\" Recipient=\"%s\"/>"
    "</ns1:SubjectConfirmation></ns1:Subject>"
    "<ns1:Conditions NotBefore=\"%s\" NotOnOrAfter=\"%s\"><ns1:AudienceRestriction>"
    "<ns1:Audience>%s</ns1:Audience></ns1:AudienceRestriction></ns1:Conditions>"
    "<ns1:AuthnStatement AuthnInstant=\"%s\" SessionIndex=\"%s\"><ns1:AuthnContext>"
    "<ns1:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
    "</ns1:AuthnContextClassRef></ns1:AuthnContext></ns1:AuthnStatement>"
    "<ns1:AttributeStatement>"
    "<ns1:Attribute Name=\"Email\"><ns1:AttributeValue>user%d@example.com</ns1:AttributeValue></ns1:Attribute>"
    "<ns1:Attribute Name=\"FirstName\"><ns1:AttributeValue>User</ns1:AttributeValue></ns1:Attribute>"
    "<ns1:Attribute Name=\"LastName\"><ns1:AttributeValue>Number %d</ns1:AttributeValue></ns1:Attribute>"
    "<ns1:Attribute Name=\"Groups\"><ns1:AttributeValue>ls-annotators</ns1:AttributeValue>"
    "<ns1:AttributeValue>team-a</ns1:AttributeValue></ns1:Attribute>"
    "</ns1:AttributeStatement></ns1:Assertion></ns0:Response>";

static void die(const char *what) {
    fprintf(stderr, "saml-xmlsec: %s\n", what);
    exit(1);
}

static void init_xmlsec(void) {
    xmlInitParser();
    if (xmlSecInit() < 0) die("xmlSecInit failed");
    if (xmlSecCheckVersion() != 1) die("libxmlsec1 version mismatch");
    if (xmlSecCryptoAppInit(NULL) < 0) die("xmlSecCryptoAppInit failed");
    if (xmlSecCryptoInit() < 0) die("xmlSecCryptoInit failed");
}

static double now_s(clockid_t c) {
    struct timespec t;
    clock_gettime(c, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void random_id(char *out, char prefix) {
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1) die("RAND_bytes failed");
    out[0] = prefix;
    for (int i = 0; i < 16; i++) sprintf(out + 1 + 2 * i, "%02x", b[i]);
}

static void iso(char *out, time_t t) {
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Registers the ID attribute of the Response and of its Assertion (the
 * elements a Reference URI="#..." may point to). */
static void add_ids(xmlDocPtr doc) {
    xmlNodePtr root = xmlDocGetRootElement(doc);
    for (xmlNodePtr n = root; n != NULL; n = (n == root) ? n->children : n->next) {
        if (n->type != XML_ELEMENT_NODE) continue;
        xmlAttrPtr a = xmlHasProp(n, BAD_CAST "ID");
        if (a != NULL) {
            xmlChar *v = xmlNodeListGetString(doc, a->children, 1);
            if (v == NULL || xmlAddID(NULL, doc, v, a) == NULL) die("xmlAddID failed");
            xmlFree(v);
        }
    }
}

static void sign_node(xmlNodePtr sig, xmlSecKeyPtr key) {
    xmlSecDSigCtxPtr ctx = xmlSecDSigCtxCreate(NULL);
    if (ctx == NULL) die("xmlSecDSigCtxCreate failed");
    ctx->signKey = xmlSecKeyDuplicate(key);
    if (ctx->signKey == NULL) die("xmlSecKeyDuplicate failed");
    if (xmlSecDSigCtxSign(ctx, sig) < 0) die("xmlSecDSigCtxSign failed");
    xmlSecDSigCtxDestroy(ctx);
}

static char *form_encode(const char *s) {
    size_t n = strlen(s);
    char *out = malloc(3 * n + 1), *o = out;
    if (out == NULL) die("out of memory");
    for (; *s; s++) {
        if (*s == '+' || *s == '/' || *s == '=') o += sprintf(o, "%%%02X", (unsigned char)*s);
        else if (*s != '\n' && *s != '\r') *o++ = *s;
    }
    *o = 0;
    return out;
}

static int cmd_sign(int argc, char **argv) {
    if (argc != 11) die("usage: sign KEY CERT MODE IDP_ENTITY SP_ENTITY ACS REQS LOGINS RESPONSES");
    const char *mode = argv[4], *idp = argv[5], *sp = argv[6], *acs = argv[7];
    int sign_assertion = !strcmp(mode, "assertion") || !strcmp(mode, "both");
    int sign_response = !strcmp(mode, "response") || !strcmp(mode, "both");
    if (!sign_assertion && !sign_response) die("MODE is assertion, response or both");
    init_xmlsec();
    xmlSecKeyPtr key = xmlSecCryptoAppKeyLoad(argv[2], xmlSecKeyDataFormatPem, NULL, NULL, NULL);
    if (key == NULL) die("cannot load the private key");
    if (xmlSecCryptoAppKeyCertLoad(key, argv[3], xmlSecKeyDataFormatPem) < 0) die("cannot load the certificate");
    FILE *in = fopen(argv[8], "r"), *logins = fopen(argv[9], "w"), *responses = fopen(argv[10], "w");
    if (!in || !logins || !responses) die("cannot open the files");
    char line[8192];
    static char doc_text[65536];
    int n = 0;
    while (fgets(line, sizeof line, in)) {
        line[strcspn(line, "\r\n")] = 0;
        char *tab = strchr(line, '\t');
        if (tab == NULL) die("REQS line without a tab");
        *tab = 0;
        const char *irt = line, *cookie = tab + 1;
        char rid[40], aid[40], sidx[40], t0[32], t1[32], asig[2048], rsig[2048];
        random_id(rid, '_');
        random_id(aid, '_');
        random_id(sidx, '_');
        time_t now = time(NULL);
        iso(t0, now);
        iso(t1, now + 300);
        snprintf(asig, sizeof asig, SIG_TEMPLATE, aid);
        snprintf(rsig, sizeof rsig, SIG_TEMPLATE, rid);
        n++;
        int len = snprintf(doc_text, sizeof doc_text, RESPONSE_TEMPLATE, rid, irt, t0, acs, idp,
                           sign_response ? rsig : "", aid, t0, idp, sign_assertion ? asig : "", n, irt,
                           t1, acs, t0, t1, sp, t0, sidx, n, n);
        if (len < 0 || len >= (int)sizeof doc_text) die("response too long");
        xmlDocPtr doc = xmlReadMemory(doc_text, len, "response.xml", NULL, XML_PARSE_NONET);
        if (doc == NULL) die("the template does not parse");
        add_ids(doc);
        xmlNodePtr root = xmlDocGetRootElement(doc);
        xmlNodePtr assertion = xmlSecFindChild(root, BAD_CAST "Assertion",
                                               BAD_CAST "urn:oasis:names:tc:SAML:2.0:assertion");
        if (sign_assertion) sign_node(xmlSecFindChild(assertion, xmlSecNodeSignature, xmlSecDSigNs), key);
        if (sign_response) sign_node(xmlSecFindChild(root, xmlSecNodeSignature, xmlSecDSigNs), key);
        xmlChar *out = NULL;
        int out_len = 0;
        xmlDocDumpMemory(doc, &out, &out_len);
        xmlChar *b64 = xmlSecBase64Encode(out, out_len, 0);
        if (b64 == NULL) die("base64 failed");
        char *form = form_encode((const char *)b64);
        fprintf(logins, "%s\tSAMLResponse=%s&RelayState=%%2Fbench\n", cookie, form);
        fprintf(responses, "%s\n", (const char *)b64);
        free(form);
        xmlFree(b64);
        xmlFree(out);
        xmlFreeDoc(doc);
    }
    if (fclose(logins) || fclose(responses)) die("write failed");
    fclose(in);
    xmlSecKeyDestroy(key);
    fprintf(stderr, "signed %d responses (%s)\n", n, mode);
    return 0;
}

struct doc { char *xml; int len; };

static int verify_one(const struct doc *d, xmlSecKeyPtr key) {
    xmlDocPtr doc = xmlReadMemory(d->xml, d->len, "response.xml", NULL, XML_PARSE_NONET);
    if (doc == NULL) return 0;
    add_ids(doc);
    xmlNodePtr root = xmlDocGetRootElement(doc);
    xmlNodePtr assertion = xmlSecFindChild(root, BAD_CAST "Assertion",
                                           BAD_CAST "urn:oasis:names:tc:SAML:2.0:assertion");
    xmlNodePtr sigs[2] = {xmlSecFindChild(root, xmlSecNodeSignature, xmlSecDSigNs),
                          assertion ? xmlSecFindChild(assertion, xmlSecNodeSignature, xmlSecDSigNs) : NULL};
    int verified = 0, ok = 1;
    for (int i = 0; i < 2; i++) {
        if (sigs[i] == NULL) continue;
        xmlSecDSigCtxPtr ctx = xmlSecDSigCtxCreate(NULL);
        if (ctx == NULL) die("xmlSecDSigCtxCreate failed");
        ctx->signKey = xmlSecKeyDuplicate(key);
        if (xmlSecDSigCtxVerify(ctx, sigs[i]) < 0 || ctx->status != xmlSecDSigStatusSucceeded) ok = 0;
        else verified++;
        xmlSecDSigCtxDestroy(ctx);
    }
    xmlFreeDoc(doc);
    return ok && verified > 0;
}

/* The certificate's public key alone, as an xmlsec key. */
static xmlSecKeyPtr pubkey_of(const char *cert_path) {
    FILE *cf = fopen(cert_path, "r");
    if (!cf) die("cannot open CERT");
    X509 *cert = PEM_read_X509(cf, NULL, NULL, NULL);
    fclose(cf);
    EVP_PKEY *pkey = cert ? X509_get_pubkey(cert) : NULL;
    if (pkey == NULL) die("cannot read the certificate's public key");
    X509_free(cert);
    xmlSecKeyDataPtr value = xmlSecOpenSSLEvpKeyAdopt(pkey);
    xmlSecKeyPtr key = xmlSecKeyCreate();
    if (value == NULL || key == NULL || xmlSecKeySetValue(key, value) < 0) die("cannot make the key");
    return key;
}

static int cmd_verify(int argc, char **argv) {
    if (argc != 5 && argc != 6) die("usage: verify pubkey|cert CERT RESPONSES [MIN_CPU_SECONDS]");
    double min_cpu = argc == 6 ? atof(argv[5]) : 2.0;
    init_xmlsec();
    xmlSecKeyPtr key = NULL;
    if (!strcmp(argv[2], "cert")) {
        key = xmlSecCryptoAppKeyLoad(argv[3], xmlSecKeyDataFormatCertPem, NULL, NULL, NULL);
        if (key == NULL) die("cannot load the certificate");
    } else if (!strcmp(argv[2], "pubkey")) {
        key = pubkey_of(argv[3]);
    } else {
        die("KEYMODE is pubkey or cert");
    }
    FILE *in = fopen(argv[4], "r");
    if (!in) die("cannot open RESPONSES");
    struct doc *docs = NULL;
    int n = 0, cap = 0;
    static char line[1 << 20];
    while (fgets(line, sizeof line, in)) {
        line[strcspn(line, "\r\n")] = 0;
        if (n == cap) {
            cap = cap ? 2 * cap : 1024;
            docs = realloc(docs, cap * sizeof *docs);
            if (!docs) die("out of memory");
        }
        xmlChar *buf = (xmlChar *)strdup(line);
        xmlSecSize len = 0;
        if (xmlSecBase64DecodeInPlace(buf, &len) < 0) die("bad base64");
        docs[n].xml = (char *)buf;
        docs[n].len = (int)len;
        n++;
    }
    fclose(in);
    if (n == 0) die("no responses");
    if (!verify_one(&docs[0], key)) die("the first response does not verify");
    double w0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_THREAD_CPUTIME_ID);
    long count = 0;
    while (now_s(CLOCK_THREAD_CPUTIME_ID) - c0 < min_cpu) {
        for (int i = 0; i < n; i++) {
            if (!verify_one(&docs[i], key)) die("a response does not verify");
        }
        count += n;
    }
    double w = now_s(CLOCK_MONOTONIC) - w0, c = now_s(CLOCK_THREAD_CPUTIME_ID) - c0;
    printf("VERIFY n=%ld wall_s=%.4f cpu_s=%.4f\n", count, w, c);
    xmlSecKeyDestroy(key);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "sign")) return cmd_sign(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "verify")) return cmd_verify(argc, argv);
    die("usage: saml-xmlsec sign ... | verify ...");
    return 2;
}
