/* cli.h: the ddb2fs commands and their usage text. */
#ifndef CLI_H
#define CLI_H

/* Runs the command named by argv[1]; returns the process exit code: 0 success, 1 the work
 * failed (a message on stderr), 2 a usage or configuration error. */
int cli_main(int argc, char **argv);

#endif
