/* connect.c: the Firestore client with the credentials the configuration names. */
#include "connect.h"

#include <stdio.h>

#include "secret.h"

int connect_firestore(const struct config *cfg, struct http *http, struct gauth **auth,
                      struct firestore **out, struct d2f_err *err)
{
    enum gauth_mode mode = cfg->token == CONFIG_TOKEN_SELF_SIGNED ? GAUTH_SELF_SIGNED : GAUTH_OAUTH;
    char audience[2100];
    int rc;

    *auth = NULL;
    snprintf(audience, sizeof(audience), "%s/", cfg->endpoint);
    if (!cfg->emulator && (rc = secret_credentials(cfg, mode, audience, http, auth, err)) != 0)
        return rc;
    return firestore_new(out, cfg, http, *auth, err);
}
