/* The private network's pure parts: the CIDR parser, the addresses, the
 * workspace's resolv.conf and hosts, and the engine dirs' names. */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "runtime/net.h"
#include "runtime/workspace.h"
#include "tmptree.h"

START_TEST(cidr_good)
{
	uint32_t net;
	unsigned prefix;

	ck_assert_int_eq(cvm_net_parse_cidr("10.255.255.252/30", &net, &prefix), 0);
	ck_assert_uint_eq(net, 0x0afffffcu);
	ck_assert_uint_eq(prefix, 30);
	ck_assert_int_eq(cvm_net_parse_cidr("192.168.0.0/16", &net, &prefix), 0);
	ck_assert_uint_eq(net, 0xc0a80000u);
	ck_assert_int_eq(cvm_net_parse_cidr("10.0.0.0/8", &net, &prefix), 0);
}
END_TEST

START_TEST(cidr_bad)
{
	static const char *const bad[] = {
		"10.0.0.1/30",          /* host bits */
		"10.0.0.0/31", "10.0.0.0/32", "10.0.0.0/7", "10.0.0.0/", "10.0.0.0",
		"10.0.0/24", "10.0.0.0.0/24", "256.0.0.0/8", "10.0.0.0/24x", "10.0.0.0/+24",
		"10.0.0.0/-24", " 10.0.0.0/24", "fd00::/64", "/24", "",
		"10.0.0.0/99999999999999999999",
	};
	uint32_t net = 7;
	unsigned prefix = 7;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(cvm_net_parse_cidr(bad[i], &net, &prefix) < 0, "accepted '%s'", bad[i]);
	ck_assert_uint_eq(net, 7);      /* untouched on error */
	ck_assert_uint_eq(prefix, 7);
}
END_TEST

START_TEST(addresses_and_hosts)
{
	struct cvm_net n;
	char hosts[512];

	cvm_net_init(&n, 0xc0a84d00u, 29);      /* 192.168.77.0/29 */
	ck_assert_uint_eq(n.outer_ip, 0xc0a84d01u);
	ck_assert_uint_eq(n.inner_ip, 0xc0a84d02u);
	ck_assert_int_eq(n.forward_was, -1);
	ck_assert(!n.link_made && !n.table_made);
	cvm_net_hosts(&n, "box", hosts, sizeof(hosts));
	ck_assert_ptr_nonnull(strstr(hosts, "127.0.0.1\tlocalhost\n"));
	ck_assert_ptr_nonnull(strstr(hosts, "192.168.77.2\tbox\n"));
	ck_assert_ptr_nonnull(strstr(hosts, "192.168.77.1\thost.cvm.internal host.docker.internal\n"));
}
END_TEST

START_TEST(resolv_conf_loopback)
{
	char root[64], path[128];
	struct cvm_error err = { 0 };
	struct cvm_resolv r;

	tmptree_make(root, "cvm-net");
	tmptree_put(root, "resolv.conf", "# comment\nnameserver 127.0.0.53\nnameserver 10.0.0.2\n"
		    "  nameserver   127.1.2.3\nnameserver ::1\nnameserver fd00::1\n"
		    "search example.com\noptions ndots:5");
	snprintf(path, sizeof(path), "%s/resolv.conf", root);
	/* without a relay: every loopback nameserver is left out */
	ck_assert_int_eq(cvm_net_resolv_conf(path, 0, &r, &err), 0);
	ck_assert_uint_eq(r.dropped, 3);
	ck_assert_str_eq(r.loopback, "");
	ck_assert_str_eq(r.text, "# comment\nnameserver 10.0.0.2\nnameserver fd00::1\n"
			 "search example.com\noptions ndots:5\n");
	/* with one: the first becomes the relay, in its place */
	ck_assert_int_eq(cvm_net_resolv_conf(path, 0x0afffffdu, &r, &err), 0);
	ck_assert_uint_eq(r.dropped, 2);
	ck_assert_str_eq(r.loopback, "127.0.0.53");
	ck_assert_str_eq(r.text, "# comment\nnameserver 10.255.255.253\nnameserver 10.0.0.2\n"
			 "nameserver fd00::1\nsearch example.com\noptions ndots:5\n");
	/* ::1 first: the relay's upstream is IPv6 */
	tmptree_put(root, "resolv6.conf", "nameserver ::1\n");
	snprintf(path, sizeof(path), "%s/resolv6.conf", root);
	ck_assert_int_eq(cvm_net_resolv_conf(path, 0x0afffffdu, &r, &err), 0);
	ck_assert_str_eq(r.loopback, "::1");
	/* too big: an error, not a cut file */
	{
		char big[6000];
		memset(big, '#', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		for (size_t i = 100; i < sizeof(big) - 1; i += 100)
			big[i] = '\n';
		tmptree_put(root, "big.conf", big);
		snprintf(path, sizeof(path), "%s/big.conf", root);
		ck_assert_int_lt(cvm_net_resolv_conf(path, 0, &r, &err), 0);
	}
	/* none at all: empty, no error (the workspace then has no DNS) */
	snprintf(path, sizeof(path), "%s/missing", root);
	ck_assert_int_eq(cvm_net_resolv_conf(path, 0x0afffffdu, &r, &err), 0);
	ck_assert_str_eq(r.text, "");
	tmptree_remove(root);
}
END_TEST

START_TEST(engine_dir_names)
{
	char b[256];

	cvm_ws_engine_dir_name("/var/lib/docker", b, sizeof(b));
	ck_assert_str_eq(b, "var-lib-docker");
	cvm_ws_engine_dir_name("//var//lib/docker/", b, sizeof(b));
	ck_assert_str_eq(b, "var-lib-docker");
	/* '-' is escaped, so /a-b and /a/b never share a dir */
	cvm_ws_engine_dir_name("/a-b", b, sizeof(b));
	ck_assert_str_eq(b, "a\\x2db");
	cvm_ws_engine_dir_name("/a/b", b, sizeof(b));
	ck_assert_str_eq(b, "a-b");
	cvm_ws_engine_dir_name("/a\\x2db", b, sizeof(b));
	ck_assert_str_eq(b, "a\\x5cx2db");
	/* never overruns */
	cvm_ws_engine_dir_name("/aaaaaaaaaaaaaaaaaaaa-bbbbbbbbbbbbbbbbbbbb", b, 16);
	ck_assert_uint_lt(strlen(b), 16);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("net");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, cidr_good);
	tcase_add_test(tc, cidr_bad);
	tcase_add_test(tc, addresses_and_hosts);
	tcase_add_test(tc, resolv_conf_loopback);
	tcase_add_test(tc, engine_dir_names);
	suite_add_tcase(s, tc);
	return tmptree_run(s);
}
