/* cli.c: the ddb2fs commands. */
#include "cli.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backfill.h"
#include "config.h"
#include "connect.h"
#include "drain.h"
#include "event.h"
#include "firestore.h"
#include "gauth.h"
#include "handler.h"
#include "http.h"
#include "ingest.h"
#include "json.h"
#include "log.h"
#include "outbox.h"
#include "partition.h"
#include "record.h"
#include "replay.h"
#include "runtime.h"
#include "secret.h"
#include "status.h"
#include "verify.h"

#define EXIT_FAILED 1
#define EXIT_USAGE 2

/* Prints "prefix: msg" on stderr with control characters escaped: a message may quote data (a
 * table name, a reason a record was refused) and a terminal would act on them. */
static void say_error(const char *prefix, const char *msg)
{
    char *e = d2f_escape_controls(msg);

    fprintf(stderr, "%s: %s\n", prefix, e ? e : "(out of memory)");
    free(e);
}
static const char usage_text[] =
    "usage: ddb2fs <command> [options]\n"
    "\n"
    "Replicates a DynamoDB table into Firestore through a durable SQLite outbox.\n"
    "\n"
    "commands:\n"
    "  ingest [FILE|-]    make a Lambda DynamoDB stream event durable in the outbox and print\n"
    "                     the {\"batchItemFailures\":[...]} answer\n"
    "  convert [FILE|-]   print the Firestore write each record becomes, one JSON line each;\n"
    "                     touches nothing\n"
    "  drain              send the pending records to Firestore, in order, in commits\n"
    "  lambda             the AWS Lambda custom runtime (the container's entry point)\n"
    "  status [--json]    pending, dead and committed records, lag, lease holder, tables\n"
    "  replay --rebuild|--resend|--dead [filters]\n"
    "                     rebuild or repair Firestore from the outbox; retry dead records\n"
    "  seal-key KEY_FILE  seal a service-account key file with a new data key; print the key\n"
    "  repartition N      move the outbox to N files (DDB2FS_PARTITIONS)\n"
    "  backfill --table T --rate R\n"
    "                     load the items the table held before its stream, through the outbox\n"
    "  verify --table T   check that Firestore is an exact copy of the table; --repair fixes it\n"
    "\n"
    "Run 'ddb2fs <command> --help' for a command's details. Settings come from the\n"
    "environment (DDB2FS_OUTBOX, DDB2FS_KEYS, DDB2FS_COLLECTIONS, ...): see the README.\n";

static const char ingest_help[] =
    "usage: ddb2fs ingest [FILE|-]\n"
    "\n"
    "Reads one Lambda DynamoDB stream event ({\"Records\":[...]}, at most 6 MB and 10,000\n"
    "records) from FILE or standard input and keeps every record in the outbox\n"
    "(DDB2FS_OUTBOX, default ./ddb2fs.db) in one transaction, exactly as the Lambda handler\n"
    "does. Records already in the outbox (same stream ARN and sequence number) are ignored.\n"
    "A record that cannot be replicated is kept as 'dead' with the reason.\n"
    "\n"
    "Prints the ReportBatchItemFailures answer on stdout: {\"batchItemFailures\":[]} when the\n"
    "event is durable. Exit status: 0 durable; 1 not durable (the answer lists every record)\n"
    "or the event is malformed; 2 usage or configuration error.\n";

static const char convert_help[] =
    "usage: ddb2fs convert [FILE|-]\n"
    "\n"
    "Reads one Lambda DynamoDB stream event and prints, one JSON line per record, the\n"
    "Firestore Write it becomes: {\"update\":{\"name\":...,\"fields\":{...}}} or\n"
    "{\"delete\":\"...\"}; {\"skip\":\"...\",\"reason\":\"...\"} for a TTL expiry ignored by\n"
    "DDB2FS_TTL_DELETES=ignore; {\"error\":\"...\"} for a record that would be dead. Touches\n"
    "nothing. Document names use GOOGLE_CLOUD_PROJECT ('-' when unset) and DDB2FS_DATABASE.\n"
    "The key schema comes from DDB2FS_KEYS, or from a record's Keys when it has one\n"
    "attribute. Exit status: 0 printed; 1 the event is malformed; 2 usage or configuration.\n";

static const char status_help[] =
    "usage: ddb2fs status [--json]\n"
    "\n"
    "Shows the outbox (DDB2FS_OUTBOX): records pending, dead and committed, the oldest\n"
    "pending record, the replication lag, the drain lease holder, and per table its key\n"
    "schema and counts. --json prints the same as one JSON object.\n";

static const char repartition_help[] =
    "usage: ddb2fs repartition N\n"
    "\n"
    "Moves the outbox at DDB2FS_OUTBOX to N files (1: one file; 2 to 64: a directory of N\n"
    "files and a manifest), each record into the file its table and Keys choose. Refused\n"
    "while any record is pending (run 'ddb2fs drain' first) or a drain holds a lease. The old\n"
    "outbox is marked moved first, so that no writer adds to it (their batches are reported\n"
    "and retried, and they open the new outbox); it is kept beside the new one as\n"
    "DDB2FS_OUTBOX.before-repartition-TIME. Then set DDB2FS_PARTITIONS=N where ddb2fs runs.\n"
    "Exit status: 0 moved (or already N); 1 refused or failed, nothing changed; 2 usage.\n";

static const char drain_help[] =
    "usage: ddb2fs drain\n"
    "\n"
    "Sends the outbox's pending records (DDB2FS_OUTBOX) to Firestore: in arrival order, one\n"
    "write per document per window, in atomic commits (DDB2FS_COMMIT_WRITES, default 500;\n"
    "DDB2FS_COMMIT_BYTES, default 4 MiB), DDB2FS_CONCURRENCY (default 8) at once, retrying\n"
    "what Firestore says to retry, for at most DDB2FS_DRAIN_SECONDS (default 300).\n"
    "Firestore: FIRESTORE_EMULATOR_HOST, or DDB2FS_FIRESTORE_ENDPOINT with the service-account\n"
    "key sealed in DDB2FS_KEY_SEALED with its data key in the Secrets Manager secret\n"
    "DDB2FS_KEY_SECRET, or of GOOGLE_APPLICATION_CREDENTIALS (DDB2FS_TOKEN=oauth or\n"
    "self-signed).\n"
    "A summary goes to stderr. Exit status: 0 nothing is left pending; 1 the drain stopped\n"
    "with records pending (the reason is printed); 2 usage or configuration error.\n";

static const char replay_help[] =
    "usage: ddb2fs replay --rebuild|--resend|--dead [--table T] [--doc COLLECTION/ID]\n"
    "                     [--since SEQ|TIME] [--until SEQ|TIME] [--project P] [--database D]\n"
    "                     [--emulator HOST:PORT] [--dry-run] [--seconds N]\n"
    "\n"
    "Writes Firestore from the outbox (DDB2FS_OUTBOX) with the drain's machinery:\n"
    "  --rebuild  the latest state of every chosen document, one write each; documents\n"
    "             whose latest record is a deletion stay absent (a wiped or new database)\n"
    "  --resend   the same, deletions included (repair documents changed in a range)\n"
    "  --dead     retry dead records after a fix: each becomes committed, or stays dead\n"
    "             with the new reason\n"
    "Filters choose the records: --table, --doc, and a range of sequence numbers (digits)\n"
    "or change times (2026-11-24T10:00:00Z, UTC), both ends included.\n"
    "The target is the configured one, or another project, database or emulator. Against\n"
    "the configured target replay holds the drain lease and never writes a document an\n"
    "older state than its newest record. --dry-run prints the writes as JSON lines and\n"
    "touches nothing. --seconds bounds the run (default 3600). Progress goes to stderr.\n"
    "Exit status: 0 all written; 1 stopped or writes refused; 2 usage or configuration.\n";

static const char seal_key_help[] =
    "usage: ddb2fs seal-key KEY_FILE [--out SEALED_FILE] [--data-key-out FILE] [--force]\n"
    "\n"
    "Checks that KEY_FILE is a Google service-account key file, encrypts it with a new random\n"
    "32-byte data key (XChaCha20-Poly1305, libsodium), and writes the sealed file, mode 0600,\n"
    "to SEALED_FILE (default KEY_FILE.sealed). The data key is printed on stdout as one\n"
    "base64 line, the value to store in AWS Secrets Manager, or written to FILE (mode 0600)\n"
    "with --data-key-out. Files that exist are not replaced without --force.\n"
    "At start-up ddb2fs reads the sealed file from DDB2FS_KEY_SEALED and the data key from\n"
    "the secret named by DDB2FS_KEY_SECRET. Exit status: 0 sealed; 1 failed; 2 usage.\n";

static int wants_help(int argc, char **argv)
{
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    return 0;
}

static const char *env(const char *name)
{
    return getenv(name);
}

static int load_config(struct config *cfg)
{
    struct d2f_err err = {0};

    if (config_load(cfg, env, &err) != 0) {
        say_error("ddb2fs", err.msg);
        return -1;
    }
    return 0;
}

/* Reads FILE, or stdin for NULL or "-", up to max bytes; one byte more tells "too large". */
static int read_input(const char *file, struct buf *out, struct d2f_err *err)
{
    FILE *f = stdin;
    char chunk[65536];
    size_t n;
    int rc = 0;

    if (file && strcmp(file, "-") != 0) {
        f = fopen(file, "rb");
        if (!f)
            return d2f_errf(err, D2F_EIO, "cannot open '%s': %s", file, strerror(errno));
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        rc = buf_add(out, chunk, n);
        if (rc == D2F_ELIMIT) {
            rc = d2f_errf(err, D2F_ELIMIT, "the event is over Lambda's limit of %d bytes (6 MB)",
                          EVENT_MAX_BYTES);
            break;
        }
        if (rc) {
            rc = d2f_errf(err, rc, "cannot read '%s': out of memory", file ? file : "-");
            break;
        }
    }
    if (!rc && ferror(f))
        rc = d2f_errf(err, D2F_EIO, "cannot read '%s': %s", file ? file : "-", strerror(errno));
    if (f != stdin)
        fclose(f);
    return rc;
}

static int one_file_arg(int argc, char **argv, const char **file)
{
    *file = NULL;
    for (int i = 2; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "ddb2fs %s: unknown option '%s'\n", argv[1], argv[i]);
            return -1;
        }
        if (*file) {
            fprintf(stderr, "ddb2fs %s: one event file at a time\n", argv[1]);
            return -1;
        }
        *file = argv[i];
    }
    return 0;
}

static int cmd_ingest(int argc, char **argv)
{
    struct config cfg;
    struct d2f_err err = {0};
    struct partitions *set = NULL;
    struct ingest *ing = NULL;
    struct ingest_result res;
    struct buf input, answer;
    const char *file;
    int rc, status = EXIT_FAILED, complete = 1;

    if (wants_help(argc, argv)) {
        fputs(ingest_help, stdout);
        return 0;
    }
    if (one_file_arg(argc, argv, &file) || load_config(&cfg))
        return EXIT_USAGE;
    buf_init(&input, EVENT_MAX_BYTES);
    buf_init(&answer, EVENT_MAX_BYTES);
    if ((rc = read_input(file, &input, &err)) != 0)
        goto out;
    /* an outbox that cannot be opened, or is damaged, keeps nothing: the answer says so */
    rc = partitions_open(&set, &cfg, OUTBOX_CREATE, &err);
    if (rc == D2F_ECONFIG) {
        status = EXIT_USAGE; /* DDB2FS_PARTITIONS is not the outbox's */
        goto out;
    }
    for (size_t i = 0; !rc && complete && i < partitions_count(set); i++)
        rc = outbox_check(partitions_outbox(set, i),
                          OUTBOX_CHECK_MS / (int64_t)partitions_count(set), &complete, &err);
    for (size_t i = 0; !rc && i < partitions_count(set); i++)
        if ((rc = outbox_check_keys(partitions_outbox(set, i), &cfg, &err)) != 0) {
            status = EXIT_USAGE;
            goto out;
        }
    if (!rc && !(ing = ingest_new_set(partitions_all(set), partitions_count(set), &cfg)))
        rc = d2f_errf(&err, D2F_ENOMEM, "out of memory");
    if (!rc)
        rc = ingest_event(ing, input.data ? input.data : "", input.len, &res, &err);
    if (rc == D2F_EINPUT || rc == D2F_ELIMIT)
        goto out; /* a malformed event: no answer can name its records */
    if (rc) {
        /* nothing was kept: every record is a failure, Lambda retries them */
        say_error("ddb2fs ingest", err.msg);
    } else {
        ingest_log(&res, "event ingested");
    }
    if (ingest_answer(input.data ? input.data : "", input.len, rc != 0, &answer) != 0) {
        rc = d2f_errf(&err, D2F_ENOMEM, "cannot build the answer");
        goto out;
    }
    puts(answer.data);
    status = rc ? EXIT_FAILED : 0;
    rc = 0;
out:
    if (rc)
        say_error("ddb2fs ingest", err.msg);
    ingest_free(ing);
    partitions_close(set);
    buf_release(&input);
    buf_release(&answer);
    config_release(&cfg);
    return status;
}

static int print_plan(const struct record_plan *plan)
{
    cJSON *line = NULL;
    char *text;

    if (plan->op == RECORD_DEAD || plan->unresolved) {
        line = cJSON_CreateObject();
        cJSON_AddStringToObject(line, "error", plan->error);
    } else if (plan->op == RECORD_SKIP) {
        line = cJSON_CreateObject();
        cJSON_AddStringToObject(line, "skip", plan->document.data);
        cJSON_AddStringToObject(line, "reason", "TTL expiry ignored (DDB2FS_TTL_DELETES=ignore)");
    }
    text = json_print(line ? line : plan->write);
    cJSON_Delete(line);
    if (!text)
        return D2F_ENOMEM;
    puts(text);
    free(text);
    return 0;
}

static int cmd_convert(int argc, char **argv)
{
    struct config cfg;
    struct d2f_err err = {0};
    struct buf input;
    char prefix[2400];
    struct event_reader r;
    struct event_record rec;
    const char *file;
    int rc;

    if (wants_help(argc, argv)) {
        fputs(convert_help, stdout);
        return 0;
    }
    if (one_file_arg(argc, argv, &file) || load_config(&cfg))
        return EXIT_USAGE;
    buf_init(&input, EVENT_MAX_BYTES);
    if ((rc = read_input(file, &input, &err)) != 0 ||
        (rc = event_reader_init(&r, input.data ? input.data : "", input.len, &err)) != 0)
        goto out;
    if (firestore_docs_path(prefix, sizeof(prefix), cfg.project ? cfg.project : "-",
                            cfg.database) != 0) {
        rc = d2f_errf(&err, D2F_ECONFIG, "GOOGLE_CLOUD_PROJECT or DDB2FS_DATABASE is too long");
        goto out;
    }
    while ((rc = event_reader_next(&r, &rec, &err)) == EVENT_RECORD) {
        struct record_plan plan;
        const char *pk, *sk;

        record_plan_init(&plan);
        rc = ingest_keys(NULL, &cfg, &rec, &pk, &sk, NULL); /* convert reads no outbox */
        if (!rc)
            rc = record_plan(&rec, &cfg, pk, sk, prefix, &plan);
        if (!rc)
            rc = print_plan(&plan);
        record_plan_release(&plan);
        event_record_release(&rec);
        if (rc) {
            d2f_errf(&err, rc, "out of memory");
            break;
        }
    }
out:
    fflush(stdout);
    if (rc)
        say_error("ddb2fs convert", err.msg);
    buf_release(&input);
    config_release(&cfg);
    return rc ? EXIT_FAILED : 0;
}

static int cmd_status(int argc, char **argv)
{
    struct config cfg;
    struct d2f_err err = {0};
    struct partitions *set = NULL;
    cJSON *s = NULL;
    int json = 0, rc;

    if (wants_help(argc, argv)) {
        fputs(status_help, stdout);
        return 0;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else {
            fprintf(stderr, "ddb2fs status: unknown argument '%s'\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (load_config(&cfg))
        return EXIT_USAGE;
    rc = partitions_open(&set, &cfg, OUTBOX_EXISTING, &err);
    if (!rc)
        rc = status_collect_set(partitions_all(set), partitions_count(set), &s, &err);
    if (!rc && json) {
        char *text = json_print(s);
        if (text)
            puts(text);
        free(text);
    } else if (!rc) {
        status_print(s, stdout);
    }
    if (rc)
        say_error("ddb2fs status", err.msg);
    cJSON_Delete(s);
    partitions_close(set);
    config_release(&cfg);
    return rc ? EXIT_FAILED : 0;
}

static int cmd_drain(int argc, char **argv)
{
    struct config cfg;
    struct d2f_err err = {0};
    struct partitions *set = NULL;
    struct http *http = NULL;
    struct gauth *auth = NULL;
    struct firestore *fs = NULL;
    struct drain_stats st = {0};
    int64_t deadline;
    int rc, status = EXIT_USAGE;

    if (wants_help(argc, argv)) {
        fputs(drain_help, stdout);
        return 0;
    }
    if (argc > 2) {
        fprintf(stderr, "ddb2fs drain: unknown argument '%s'\n", argv[2]);
        return EXIT_USAGE;
    }
    if (load_config(&cfg))
        return EXIT_USAGE;
    if ((rc = http_new(&http, &err)) != 0 ||
        (rc = connect_firestore(&cfg, http, &auth, &fs, &err)) != 0)
        goto out;
    status = EXIT_FAILED;
    if ((rc = partitions_open(&set, &cfg, OUTBOX_EXISTING, &err)) != 0)
        goto out;
    for (size_t i = 0; i < partitions_count(set); i++)
        if ((rc = outbox_check_keys(partitions_outbox(set, i), &cfg, &err)) != 0 ||
            (rc = outbox_settings(partitions_outbox(set, i), &cfg, &err)) != 0)
            goto out;
    deadline = d2f_now_ms() + cfg.drain_seconds * 1000;
    rc =
        drain_run_set(partitions_all(set), partitions_count(set), 0, &cfg, fs, deadline, &st, &err);
    drain_log(&st, rc ? err.msg : NULL);
    drain_prune_set(partitions_all(set), partitions_count(set), &cfg, deadline);
    status = rc ? EXIT_FAILED : 0;
out:
    if (rc)
        say_error("ddb2fs drain", err.msg);
    partitions_close(set);
    firestore_free(fs);
    gauth_free(auth);
    http_free(http);
    config_release(&cfg);
    return status;
}

static const char lambda_help[] =
    "usage: ddb2fs lambda\n"
    "\n"
    "The AWS Lambda custom runtime: speaks the Runtime API at AWS_LAMBDA_RUNTIME_API. A\n"
    "DynamoDB stream batch is made durable in the outbox in one transaction, drained while\n"
    "time remains, and answered with {\"batchItemFailures\":[...]}; a scheduled event\n"
    "(EventBridge) drains only. Logs are JSON lines on stdout. A bad configuration is\n"
    "reported to init/error with an errorType naming what failed.\n";

static int cmd_lambda(int argc, char **argv)
{
    struct d2f_err err = {0};
    struct http *http = NULL;
    struct runtime *rt = NULL;
    struct handler *h = NULL;
    struct runtime_invocation inv;
    struct buf answer;
    int rc;

    if (wants_help(argc, argv)) {
        fputs(lambda_help, stdout);
        return 0;
    }
    log_setup(stdout, LOG_INFO);
    runtime_invocation_init(&inv);
    buf_init(&answer, RUNTIME_MAX_PAYLOAD);
    if ((rc = http_new(&http, &err)) != 0 ||
        (rc = runtime_open(&rt, getenv("AWS_LAMBDA_RUNTIME_API"), http, &err)) != 0) {
        log_write(LOG_ERROR, err.msg, NULL);
        goto out;
    }
    if ((rc = handler_new(&h, env, http, &err)) != 0) {
        struct d2f_err post_err = {0};
        log_write(LOG_ERROR, err.msg, NULL);
        if (runtime_init_error(rt, handler_error_type(rc), err.msg, &post_err) != 0)
            log_write(LOG_ERROR, post_err.msg, NULL);
        goto out;
    }
    for (;;) {
        const char *type = NULL;

        if ((rc = runtime_next(rt, &inv, &err)) != 0) {
            log_write(LOG_ERROR, err.msg, NULL);
            break;
        }
        log_set_request(inv.request_id);
        buf_reset(&answer);
        rc = handler_invoke(h, inv.event.data ? inv.event.data : "", inv.event.len, inv.deadline_ms,
                            &answer, &type, &err);
        if (rc) {
            log_write(LOG_ERROR, err.msg, NULL);
            rc = runtime_fail(rt, &inv, type ? type : handler_error_type(rc), err.msg, &err);
        } else {
            rc = runtime_respond(rt, &inv, answer.data, answer.len, &err);
        }
        if (rc) {
            log_write(LOG_ERROR, err.msg, NULL);
            break;
        }
        log_set_request(NULL);
    }
out:
    handler_free(h);
    runtime_close(rt);
    http_free(http);
    runtime_invocation_release(&inv);
    buf_release(&answer);
    return rc ? EXIT_FAILED : 0;
}

static int cmd_seal_key(int argc, char **argv)
{
    struct secret_seal_opts o = {0};
    struct d2f_err err = {0};
    char *def = NULL;
    int rc;

    if (wants_help(argc, argv)) {
        fputs(seal_key_help, stdout);
        return 0;
    }
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--force") == 0) {
            o.force = 1;
        } else if (strcmp(a, "--out") == 0 || strcmp(a, "--data-key-out") == 0) {
            if (i + 1 >= argc || !argv[i + 1][0]) {
                fprintf(stderr, "ddb2fs seal-key: %s needs a file name\n", a);
                return EXIT_USAGE;
            }
            *(a[2] == 'o' ? &o.sealed_file : &o.data_key_file) = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "ddb2fs seal-key: unknown option '%s'\n\n%s", a, seal_key_help);
            return EXIT_USAGE;
        } else if (o.key_file) {
            fprintf(stderr, "ddb2fs seal-key: one key file at a time\n");
            return EXIT_USAGE;
        } else {
            o.key_file = a;
        }
    }
    if (!o.key_file) {
        fprintf(stderr, "ddb2fs seal-key: no key file given\n\n%s", seal_key_help);
        return EXIT_USAGE;
    }
    if (!o.sealed_file) {
        size_t n = strlen(o.key_file) + sizeof(".sealed");
        if (!(def = malloc(n))) {
            fputs("ddb2fs seal-key: out of memory\n", stderr);
            return EXIT_FAILED;
        }
        snprintf(def, n, "%s.sealed", o.key_file);
        o.sealed_file = def;
    }
    if (o.data_key_file && strcmp(o.data_key_file, o.sealed_file) == 0) {
        fprintf(stderr, "ddb2fs seal-key: the sealed file and the data key file are one\n");
        free(def);
        return EXIT_USAGE;
    }
    rc = secret_seal(&o, stdout, &err);
    if (rc)
        say_error("ddb2fs seal-key", err.msg);
    else
        fprintf(stderr, "ddb2fs seal-key: sealed '%s' into '%s'%s%s\n", o.key_file, o.sealed_file,
                o.data_key_file ? "; data key in " : "; data key on stdout",
                o.data_key_file ? o.data_key_file : "");
    free(def);
    return rc == D2F_EUSAGE ? EXIT_USAGE : rc ? EXIT_FAILED : 0;
}

static int cmd_replay(int argc, char **argv)
{
    static const struct {
        const char *name;
        size_t offset;
    } values[] = {
        {"--table", offsetof(struct replay_opts, table)},
        {"--doc", offsetof(struct replay_opts, doc)},
        {"--since", offsetof(struct replay_opts, since)},
        {"--until", offsetof(struct replay_opts, until)},
        {"--project", offsetof(struct replay_opts, project)},
        {"--database", offsetof(struct replay_opts, database)},
        {"--emulator", offsetof(struct replay_opts, emulator)},
        {"--seconds", 0}, /* a number, read below */
    };
    struct replay_opts o = {.seconds = 3600};
    struct replay_result res = {0};
    struct config cfg;
    struct d2f_err err = {0};
    struct partitions *set = NULL;
    struct http *http = NULL;
    int modes = 0, rc, status;

    if (wants_help(argc, argv)) {
        fputs(replay_help, stdout);
        return 0;
    }
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        size_t k;
        if (strcmp(a, "--rebuild") == 0 || strcmp(a, "--resend") == 0 || strcmp(a, "--dead") == 0) {
            o.mode = strcmp(a, "--rebuild") == 0 ? REPLAY_REBUILD
                     : strcmp(a, "--dead") == 0  ? REPLAY_DEAD
                                                 : REPLAY_RESEND;
            modes++;
            continue;
        }
        if (strcmp(a, "--dry-run") == 0) {
            o.dry_run = 1;
            continue;
        }
        for (k = 0; k < sizeof(values) / sizeof(values[0]); k++)
            if (strcmp(a, values[k].name) == 0)
                break;
        if (k == sizeof(values) / sizeof(values[0]) || i + 1 >= argc || !argv[i + 1][0]) {
            fprintf(stderr, "ddb2fs replay: %s '%s'\n\n%s",
                    k == sizeof(values) / sizeof(values[0]) ? "unknown option" : "no value for", a,
                    replay_help);
            return EXIT_USAGE;
        }
        if (values[k].offset) {
            *(const char **)((char *)&o + values[k].offset) = argv[++i];
        } else {
            char *end;
            o.seconds = strtol(argv[++i], &end, 10);
            if (*end || o.seconds < 1 || o.seconds > 7 * 86400) {
                fprintf(stderr, "ddb2fs replay: --seconds takes 1 to 604800\n");
                return EXIT_USAGE;
            }
        }
    }
    if (modes != 1) {
        fprintf(stderr, "ddb2fs replay: give one of --rebuild, --resend, --dead\n\n%s",
                replay_help);
        return EXIT_USAGE;
    }
    if (load_config(&cfg))
        return EXIT_USAGE;
    if ((rc = http_new(&http, &err)) == 0 &&
        (rc = partitions_open(&set, &cfg, o.dry_run ? OUTBOX_READONLY : OUTBOX_EXISTING, &err)) ==
            0) {
        rc = replay_run_set(&o, &cfg, partitions_all(set), partitions_count(set), http, stdout,
                            stderr, &res, &err);
        if (rc != D2F_EUSAGE && rc != D2F_ECONFIG)
            replay_log(&o, &res, rc ? err.msg : NULL);
    }
    status = rc == D2F_EUSAGE || rc == D2F_ECONFIG ? EXIT_USAGE : rc ? EXIT_FAILED : 0;
    if (rc)
        say_error("ddb2fs replay", err.msg);
    partitions_close(set);
    http_free(http);
    config_release(&cfg);
    return status;
}

static int cmd_repartition(int argc, char **argv)
{
    struct config cfg;
    struct d2f_err err = {0};
    struct partitions_moved moved;
    char *end = NULL;
    long n = 0;
    int rc;

    if (wants_help(argc, argv)) {
        fputs(repartition_help, stdout);
        return 0;
    }
    if (argc == 3)
        n = strtol(argv[2], &end, 10);
    if (argc != 3 || !end || *end || n < 1 || n > CONFIG_PARTITIONS_MAX) {
        fprintf(stderr, "ddb2fs repartition: give N, 1 to %d\n\n%s", CONFIG_PARTITIONS_MAX,
                repartition_help);
        return EXIT_USAGE;
    }
    if (load_config(&cfg))
        return EXIT_USAGE;
    rc = partitions_repartition(&cfg, (size_t)n, &moved, &err);
    if (rc)
        say_error("ddb2fs repartition", err.msg);
    else if (moved.from == moved.to)
        fprintf(stderr, "ddb2fs repartition: '%s' has %zu file%s already; nothing moved\n",
                cfg.outbox, moved.to, moved.to == 1 ? "" : "s");
    else
        fprintf(stderr,
                "ddb2fs repartition: '%s' moved from %zu file%s to %zu: %lld records; the outbox "
                "as it was is kept at '%s' (remove it when satisfied); set DDB2FS_PARTITIONS=%zu "
                "where ddb2fs runs\n",
                cfg.outbox, moved.from, moved.from == 1 ? "" : "s", moved.to,
                (long long)moved.records, moved.kept, moved.to);
    config_release(&cfg);
    return rc == D2F_EUSAGE ? EXIT_USAGE : rc ? EXIT_FAILED : 0;
}

static const char backfill_help[] =
    "usage: ddb2fs backfill --table T --rate R [--segments N] [--consistent]\n"
    "                       [--stream-is-mapped] [--limit N]\n"
    "       ddb2fs backfill --status [--json]\n"
    "       ddb2fs backfill --cancel --table T\n"
    "\n"
    "Reads every item of table T with a parallel Scan (N segments, default 4; pages of at\n"
    "most 1 MB, or N items with --limit) paced at R read capacity units per second, and keeps\n"
    "each page in the outbox as snapshot records, together with its segment's position: an\n"
    "interrupted backfill goes on where it stopped when run again. 'ddb2fs drain' (and the\n"
    "function) sends a snapshot only when the stream has nothing to say about its item, once\n"
    "the stream has caught up past the read (DDB2FS_BACKFILL_SETTLE, DDB2FS_BACKFILL_MARGIN).\n"
    "The table's stream must carry new images and be mapped to ddb2fs first: the outbox must\n"
    "have received a record of it, or say so with --stream-is-mapped.\n"
    "Exit status: 0 every segment read; 1 the backfill failed or stopped; 2 usage, refusal.\n";

/* The progress bar: items, pages, read units per second, ETA. */
static void backfill_progress(void *ctx, const struct backfill_stats *st)
{
    FILE *out = ctx;
    double secs = (double)st->elapsed_ms / 1000.0, frac = 0;
    char bar[21], eta[32] = "-";
    int fill;

    if (st->item_count > 0)
        frac = (double)st->total_items / st->item_count;
    if (frac > 1 || st->segments_done == st->segments)
        frac = 1;
    if (frac < 1 && secs > 0 && st->items > 0 && st->item_count > 0)
        snprintf(eta, sizeof(eta), "%.0f s",
                 (st->item_count - (double)st->total_items) / ((double)st->items / secs));
    fill = (int)(frac * 20);
    for (int i = 0; i < 20; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[20] = '\0';
    fprintf(out, "\rbackfill [%s] %lld items, %lld pages, %.1f read units/s, ETA %s   ", bar,
            (long long)st->total_items, (long long)st->total_pages,
            secs > 0 ? st->read_units / secs : 0.0, eta);
    fflush(out);
}

static int cmd_backfill(int argc, char **argv)
{
    struct config cfg;
    struct d2f_err err = {0};
    struct outbox *ob = NULL;
    struct backfill_opts o = {.segments = 4};
    struct backfill_stats st = {0};
    int status = 0, cancel = 0, json = 0, rc = 0;
    int64_t job = 0;
    char *end;

    if (wants_help(argc, argv)) {
        fputs(backfill_help, stdout);
        return 0;
    }
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--status") == 0) {
            status = 1;
        } else if (strcmp(a, "--cancel") == 0) {
            cancel = 1;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--consistent") == 0) {
            o.consistent = 1;
        } else if (strcmp(a, "--stream-is-mapped") == 0) {
            o.stream_is_mapped = 1;
        } else if (strcmp(a, "--table") == 0 && v) {
            o.table = argv[++i];
        } else if (strcmp(a, "--segments") == 0 && v) {
            long n = strtol(argv[++i], &end, 10);
            if (*end || n < 1 || n > 1000) {
                fprintf(stderr, "ddb2fs backfill: --segments: '%s' is not 1 to 1000\n", v);
                return EXIT_USAGE;
            }
            o.segments = (int)n;
        } else if (strcmp(a, "--limit") == 0 && v) {
            long n = strtol(argv[++i], &end, 10);
            if (*end || n < 1 || n > 1000000) {
                fprintf(stderr, "ddb2fs backfill: --limit: '%s' is not 1 to 1000000\n", v);
                return EXIT_USAGE;
            }
            o.limit = n;
        } else if (strcmp(a, "--rate") == 0 && v) {
            o.rate = strtod(argv[++i], &end);
            if (*end || !(o.rate > 0) || o.rate > 1e7) {
                fprintf(stderr,
                        "ddb2fs backfill: --rate: '%s' is not a number of read units "
                        "per second over 0\n",
                        v);
                return EXIT_USAGE;
            }
        } else {
            fprintf(stderr, "ddb2fs backfill: unknown or incomplete argument '%s'\n", a);
            return EXIT_USAGE;
        }
    }
    if (!status && !o.table) {
        fprintf(stderr, "ddb2fs backfill: --table is required\n");
        return EXIT_USAGE;
    }
    if (!status && !cancel && !(o.rate > 0)) {
        fprintf(stderr, "ddb2fs backfill: --rate is required: the read capacity units per second "
                        "the backfill may use (on-demand tables too)\n");
        return EXIT_USAGE;
    }
    if (load_config(&cfg))
        return EXIT_USAGE;
    if (cfg.partitions > 1 || partitions_is_dir(cfg.outbox)) {
        fprintf(stderr, "ddb2fs backfill: not with a partitioned outbox (DDB2FS_PARTITIONS) yet\n");
        config_release(&cfg);
        return EXIT_USAGE;
    }
    if ((rc = outbox_open(&ob, cfg.outbox, cfg.journal, status ? OUTBOX_EXISTING : OUTBOX_CREATE,
                          &err)) != 0)
        goto out;
    if (status) {
        cJSON *s = cJSON_CreateObject();
        if (!s || (rc = backfill_status(ob, s, &err)) != 0) {
            cJSON_Delete(s);
            goto out;
        }
        if (json) {
            char *text = json_print(cJSON_GetObjectItemCaseSensitive(s, "backfills"));
            if (text)
                puts(text);
            free(text);
        } else {
            const cJSON *b;
            cJSON_ArrayForEach(b, cJSON_GetObjectItemCaseSensitive(s, "backfills"))
            {
                char *line = json_print(b);
                if (line)
                    puts(line);
                free(line);
            }
        }
        cJSON_Delete(s);
        goto out;
    }
    if (cancel) {
        if ((rc = backfill_cancel(ob, o.table, &job, &err)) == 0)
            printf("backfill of '%s' (job %lld) cancelled\n", o.table, (long long)job);
        goto out;
    }
    if ((rc = outbox_check_keys(ob, &cfg, &err)) != 0)
        goto out;
    /* pages are only appended: a small page cache keeps memory flat whatever the table's size */
    sqlite3_exec(outbox_db(ob), "PRAGMA cache_size = -4096", NULL, NULL, NULL);
    /* a job of this table already scanning goes on; otherwise a new one */
    if ((rc = backfill_start(ob, &cfg, &o, &job, &err)) == D2F_EUSAGE &&
        strstr(err.msg, "is already scanning")) {
        const char *p = strstr(err.msg, "(job ");
        job = p ? strtoll(p + 5, NULL, 10) : 0;
        fprintf(stderr, "ddb2fs backfill: job %lld of '%s' goes on where it stopped\n",
                (long long)job, o.table);
        rc = job ? 0 : rc;
    }
    if (rc)
        goto out;
    rc = backfill_run(ob, &cfg, job, INT64_MAX / 2, isatty(2) ? backfill_progress : NULL, stderr,
                      &st, &err);
    if (isatty(2))
        fputc('\n', stderr);
    if (!rc && st.busy && !st.pages) {
        rc = d2f_errf(&err, D2F_ELEASE,
                      "another runner (the function, or another 'ddb2fs backfill') scans job "
                      "%lld now: see 'ddb2fs backfill --status'",
                      (long long)job);
        goto out;
    }
    printf("backfill of '%s' (job %lld): %lld items in %lld pages this run, %.1f read units, "
           "%.1f s (%.0f items/s), %lu requests retried; %s\n",
           o.table, (long long)job, (long long)st.items, (long long)st.pages, st.read_units,
           (double)st.elapsed_ms / 1000.0,
           st.elapsed_ms > 0 ? (double)st.items * 1000.0 / (double)st.elapsed_ms : 0.0, st.retries,
           st.done ? "every segment read: the snapshots go out with 'ddb2fs drain' once the "
                     "stream has caught up"
                   : "not finished: run it again to go on");
out:
    if (rc)
        fprintf(stderr, "ddb2fs backfill: %s\n", err.msg);
    outbox_close(ob);
    config_release(&cfg);
    return rc == D2F_EUSAGE || rc == D2F_ECONFIG ? EXIT_USAGE : rc ? EXIT_FAILED : 0;
}

static const char verify_help[] =
    "usage: ddb2fs verify --table T [--segments N] [--rate R] [--collection C] [--json]\n"
    "                     [--repair] [--sample P] [--recheck-after S] [--show-values]\n"
    "\n"
    "Reads every item of table T with a parallel Scan (N segments, default 8; paced at R read\n"
    "capacity units per second, default as fast as DynamoDB answers), reads each item's\n"
    "document from Firestore (batchGet) and compares the two by value under the configured\n"
    "mapping (DDB2FS_NUMBERS, DDB2FS_RESERVED_NAMES, DDB2FS_COLLECTIONS; types strict); then\n"
    "lists the collection for documents no item has. A difference is checked again after S\n"
    "seconds (default 60), and as long as the outbox (DDB2FS_OUTBOX, when it exists) holds\n"
    "records pending for its document: the item with a consistent GetItem, the document\n"
    "again. Only differences that persist are reported: missing, different (the field paths\n"
    "and the two value types; the values only with --show-values) and extra documents.\n"
    "--sample P checks P%% of the segments (no extra documents then). --repair writes the\n"
    "table's current image of each difference into the outbox (an extra document: its\n"
    "deletion), where the stream always wins, sends it, and checks those documents again.\n"
    "A progress bar on a terminal; --json prints the report as one JSON object.\n"
    "Exit status: 0 exact (with --repair: every difference repaired); 1 differences;\n"
    "2 usage, configuration, or a service that refuses or does not answer.\n";

/* The progress bar: items read of the table's ItemCount. */
static void verify_progress(void *ctx, const struct verify_report *r)
{
    FILE *out = ctx;
    double frac = r->item_count > 0 ? (double)r->items / r->item_count : 0;
    char bar[21];
    int fill;

    frac = frac > 1 ? 1 : frac;
    fill = (int)(frac * 20);
    for (int i = 0; i < 20; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[20] = '\0';
    fprintf(out, "\rverify [%s] %lld items, %lld equal, %lld to look at again   ", bar,
            (long long)r->items, (long long)r->equal,
            (long long)(r->items - r->equal - r->unmapped));
    fflush(out);
}

static int cmd_verify(int argc, char **argv)
{
    struct config cfg;
    struct d2f_err err = {0};
    struct verify_opts o = {.segments = 8, .sample = 100, .recheck_after_ms = 60000};
    struct verify_report r;
    int json = 0, rc;
    char *end;

    if (wants_help(argc, argv)) {
        fputs(verify_help, stdout);
        return 0;
    }
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        double d = 0;
        if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--repair") == 0) {
            o.repair = 1;
        } else if (strcmp(a, "--show-values") == 0) {
            o.show_values = 1;
        } else if (strcmp(a, "--table") == 0 && v) {
            o.table = argv[++i];
        } else if (strcmp(a, "--collection") == 0 && v) {
            o.collection = argv[++i];
        } else if ((strcmp(a, "--segments") == 0 || strcmp(a, "--rate") == 0 ||
                    strcmp(a, "--sample") == 0 || strcmp(a, "--recheck-after") == 0) &&
                   v) {
            d = strtod(argv[++i], &end);
            if (*end || !v[0] || !(d >= 0) || d > 1e7 ||
                (strcmp(a, "--segments") == 0 && (d < 1 || d > 1000 || d != (double)(long)d)) ||
                (strcmp(a, "--sample") == 0 && (d <= 0 || d > 100))) {
                fprintf(stderr, "ddb2fs verify: %s: '%s' is not %s\n", a, v,
                        strcmp(a, "--segments") == 0 ? "1 to 1000"
                        : strcmp(a, "--sample") == 0 ? "a percentage over 0, at most 100"
                                                     : "a number, 0 or more");
                return EXIT_USAGE;
            }
            if (strcmp(a, "--segments") == 0)
                o.segments = (int)d;
            else if (strcmp(a, "--rate") == 0)
                o.rate = d;
            else if (strcmp(a, "--sample") == 0)
                o.sample = d;
            else
                o.recheck_after_ms = (int64_t)(d * 1000);
        } else {
            fprintf(stderr, "ddb2fs verify: unknown or incomplete argument '%s'\n", a);
            return EXIT_USAGE;
        }
    }
    if (!o.table) {
        fprintf(stderr, "ddb2fs verify: --table is required\n");
        return EXIT_USAGE;
    }
    if (load_config(&cfg))
        return EXIT_USAGE;
    if (isatty(2)) {
        o.progress = verify_progress;
        o.ctx = stderr;
    }
    rc = verify_run(&cfg, &o, &r, &err);
    if (isatty(2))
        fputc('\n', stderr);
    if (rc) {
        fprintf(stderr, "ddb2fs verify: %s\n", err.msg);
    } else {
        verify_log(&r, NULL, stderr);
        if (json) {
            cJSON *j = verify_report_json(&r);
            char *text = j ? json_print(j) : NULL;
            if (text)
                puts(text);
            cJSON_free(text);
            cJSON_Delete(j);
        } else {
            verify_print_text(&r, stdout);
        }
    }
    verify_report_release(&r);
    config_release(&cfg);
    if (rc)
        return EXIT_USAGE;
    if (o.repair)
        return r.not_repaired || r.repaired < verify_differences(&r) ? EXIT_FAILED : 0;
    return verify_differences(&r) ? EXIT_FAILED : 0;
}

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
} commands[] = {
    {"ingest", cmd_ingest},     {"convert", cmd_convert},         {"status", cmd_status},
    {"drain", cmd_drain},       {"lambda", cmd_lambda},           {"replay", cmd_replay},
    {"seal-key", cmd_seal_key}, {"repartition", cmd_repartition}, {"backfill", cmd_backfill},
    {"verify", cmd_verify},
};

int cli_main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : NULL;

    if (!cmd) {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        puts("ddb2fs " DDB2FS_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(cmd, commands[i].name) == 0)
            return commands[i].run(argc, argv);
    fprintf(stderr, "ddb2fs: '%s' is not a command\n\n%s", cmd, usage_text);
    return EXIT_USAGE;
}
