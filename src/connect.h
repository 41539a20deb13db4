/*
 * connect.h: the Firestore client a configuration asks for, with its credentials. The one
 * place where where credentials come from (secret.h: a sealed key, a key file, or workload
 * identity federation) meets the REST client, which takes whatever credentials it is handed
 * (firestore.h) and knows nothing of secrets.
 */
#ifndef CONNECT_H
#define CONNECT_H

#include "config.h"
#include "d2f.h"
#include "firestore.h"
#include "gauth.h"
#include "http.h"

/* The client cfg asks for: with the emulator, no credentials; else the credentials cfg names
 * (secret_credentials; DDB2FS_TOKEN chooses the token) into *auth. Both are freed by the
 * caller. */
int connect_firestore(const struct config *cfg, struct http *http, struct gauth **auth,
                      struct firestore **out, struct d2f_err *err) D2F_WUR;

#endif
