/*
 * awssm.h: AWS Secrets Manager's GetSecretValue, signed with libcurl's SigV4 (see aws.h);
 * endpoint from AWS_ENDPOINT_URL_SECRETS_MANAGER, else AWS_ENDPOINT_URL, else AWS's.
 */
#ifndef AWSSM_H
#define AWSSM_H

#include <stddef.h>

#include "config.h"
#include "d2f.h"

/*
 * The current value of secret id (its SecretString, or its SecretBinary decoded, *binary set)
 * into *value:
 * libsodium guarded memory, NUL-terminated, made inaccessible (sodium_mprotect_noaccess)
 * before it is returned; the caller makes it readable to read it and sodium_free's it. Every
 * other copy of the value is wiped. Errors as aws_json_call, naming the secret.
 */
int awssm_get_secret(const struct config *cfg, const char *id, char **value, size_t *len,
                     int *binary, struct d2f_err *err) D2F_WUR;

#endif
