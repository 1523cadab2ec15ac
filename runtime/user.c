#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "syscalls.h"
#include "user.h"

#define MAX_FIELDS 7

static FILE *open_db(int root_dirfd, const char *path)
{
	struct cvm_open_how how = { .flags = O_RDONLY | O_CLOEXEC,
				    .resolve = CVM_RESOLVE_IN_ROOT | CVM_RESOLVE_NO_MAGICLINKS };
	int fd = sys_openat2(root_dirfd, path, &how, sizeof(how));
	FILE *f;

	if (fd < 0)
		return NULL;
	f = fdopen(fd, "re");
	if (!f)
		close(fd);
	return f;
}

/* Split a line into ':' fields in place; returns the field count. */
static int split_fields(char *line, char **fields)
{
	int n = 0;

	line[strcspn(line, "\n")] = '\0';
	fields[n++] = line;
	for (char *p = line; *p && n < MAX_FIELDS; p++)
		if (*p == ':') {
			*p = '\0';
			fields[n++] = p + 1;
		}
	return n;
}

static int parse_id(const char *s, unsigned long *out)
{
	char *end;

	if (!*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return (*end || errno || *out >= 0xFFFFFFFFUL) ? -1 : 0;
}

/* Read the next line; over-long lines are skipped whole, not split. */
static char *next_line(FILE *f, char *buf, size_t len)
{
	while (fgets(buf, (int)len, f)) {
		if (strchr(buf, '\n') || feof(f))
			return buf;
		int c;
		while ((c = fgetc(f)) != EOF && c != '\n')
			;
	}
	return NULL;
}

/* Find a passwd entry by name (or by uid when @name is NULL). */
static int find_passwd(FILE *f, const char *name, unsigned long uid, struct cvm_user *u)
{
	char line[4096], *fl[MAX_FIELDS];
	unsigned long id, gid;

	while (f && next_line(f, line, sizeof(line))) {
		if (split_fields(line, fl) < 7 || parse_id(fl[2], &id) < 0 || parse_id(fl[3], &gid) < 0)
			continue;
		if (name ? strcmp(fl[0], name) != 0 : id != uid)
			continue;
		u->uid = (uid_t)id;
		u->gid = (gid_t)gid;
		snprintf(u->name, sizeof(u->name), "%s", fl[0]);
		snprintf(u->home, sizeof(u->home), "%s", fl[5][0] == '/' ? fl[5] : "/");
		snprintf(u->shell, sizeof(u->shell), "%s", fl[6][0] ? fl[6] : "/bin/sh");
		return 0;
	}
	return -1;
}

static void add_group(struct cvm_user *u, gid_t g)
{
	for (size_t i = 0; i < u->n_groups; i++)
		if (u->groups[i] == g)
			return;
	if (u->n_groups < CVM_USER_MAX_GROUPS)
		u->groups[u->n_groups++] = g;
}

/* Supplementary groups, and the gid of the group named @want (if any). */
static int scan_groups(FILE *f, struct cvm_user *u, const char *want, unsigned long *want_gid)
{
	char line[65536], *fl[MAX_FIELDS];
	unsigned long gid;
	int found = -1;

	while (f && next_line(f, line, sizeof(line))) {
		if (split_fields(line, fl) < 4 || parse_id(fl[2], &gid) < 0)
			continue;
		if (want && !strcmp(fl[0], want)) {
			*want_gid = gid;
			found = 0;
		}
		for (char *save = NULL, *m = strtok_r(fl[3], ",", &save); m;
		     m = strtok_r(NULL, ",", &save))
			if (!strcmp(m, u->name))
				add_group(u, (gid_t)gid);
	}
	return found;
}

int cvm_user_resolve(int root_dirfd, const char *spec, struct cvm_user *u,
		     struct cvm_error *err)
{
	char user[256], *group;
	unsigned long id, gid = 0;
	cleanup_file FILE *pw = open_db(root_dirfd, "/etc/passwd");
	cleanup_file FILE *gr = open_db(root_dirfd, "/etc/group");

	memset(u, 0, sizeof(*u));
	if (!spec || !*spec || strlen(spec) >= sizeof(user))
		return cvm_error_set(err, 0, "user '%s': expected a name, uid or uid:gid",
				     spec ? spec : "");
	strcpy(user, spec);
	group = strchr(user, ':');
	if (group)
		*group++ = '\0';
	if (parse_id(user, &id) == 0) {
		if (find_passwd(pw, NULL, id, u) < 0) {
			u->uid = (uid_t)id;
			snprintf(u->name, sizeof(u->name), "%lu", id);
			strcpy(u->home, "/");
			strcpy(u->shell, "/bin/sh");
		}
	} else if (find_passwd(pw, user, 0, u) < 0)
		return cvm_error_set(err, 0, "user %s: not in /etc/passwd of the workspace%s", user,
				     pw ? "" : " (it has no /etc/passwd)");
	bool group_is_name = group && parse_id(group, &gid) < 0;
	if (group && !group_is_name)
		u->gid = (gid_t)gid;
	if (scan_groups(gr, u, group_is_name ? group : NULL, &gid) < 0 && group_is_name)
		return cvm_error_set(err, 0, "group %s: not in /etc/group of the workspace", group);
	if (group_is_name)
		u->gid = (gid_t)gid;
	add_group(u, u->gid);
	return 0;
}
