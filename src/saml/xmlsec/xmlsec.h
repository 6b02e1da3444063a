/* The libxmlsec1 declarations authgate's own FFI (src/saml/xmlsec/) uses,
 * turned into Rust by build.rs with bindgen from the headers installed on
 * the build machine, so struct fields are read at the offsets of the
 * library actually linked. */
#include <xmlsec/xmlsec.h>
#include <xmlsec/app.h>
#include <xmlsec/buffer.h>
#include <xmlsec/keys.h>
#include <xmlsec/keysmngr.h>
#include <xmlsec/list.h>
#include <xmlsec/membuf.h>
#include <xmlsec/transforms.h>
#include <xmlsec/xmldsig.h>
#include <xmlsec/xmlenc.h>
#include <xmlsec/errors.h>
#include <xmlsec/crypto.h>
