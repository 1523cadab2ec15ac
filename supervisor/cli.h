#ifndef CVM_CLI_H
#define CVM_CLI_H

/* Each command takes argv with argv[0] = its own name; returns the exit code. */
int cvm_cmd_run(int argc, char *argv[]);
int cvm_cmd_exec(int argc, char *argv[]);
int cvm_cmd_status(int argc, char *argv[]);
int cvm_cmd_check(int argc, char *argv[]);
int cvm_cmd_pull(int argc, char *argv[]);

#endif
