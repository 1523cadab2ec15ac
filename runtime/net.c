#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef CVM_HAVE_PRIVATE_NET
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#endif

#include "cleanup.h"
#include "net.h"

/* ---- small parsers -------------------------------------------------------- */

int cvm_net_parse_cidr(const char *s, uint32_t *net, unsigned *prefix)
{
	char addr[INET_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	struct in_addr a;
	char *end;
	unsigned long p;

	if (!slash || (size_t)(slash - s) >= sizeof(addr) || !slash[1])
		return -1;
	memcpy(addr, s, (size_t)(slash - s));
	addr[slash - s] = '\0';
	errno = 0;
	p = strtoul(slash + 1, &end, 10);
	if (*end || errno || p < 8 || p > 30 || slash[1] == '+' || slash[1] == '-' ||
	    inet_pton(AF_INET, addr, &a) != 1)
		return -1;
	uint32_t host = ntohl(a.s_addr), mask = ~0u << (32 - p);
	if (host & ~mask)
		return -1;      /* "10.0.0.1/30": say the network, not a host */
	*net = host;
	*prefix = (unsigned)p;
	return 0;
}

void cvm_net_init(struct cvm_net *n, uint32_t net, unsigned prefix)
{
	memset(n, 0, sizeof(*n));
	n->net = net;
	n->prefix = prefix;
	n->outer_ip = net + 1;
	n->inner_ip = net + 2;
	n->forward_was = -1;
}

static const char *ip_str(uint32_t ip, char buf[static INET_ADDRSTRLEN])
{
	struct in_addr a = { htonl(ip) };
	return inet_ntop(AF_INET, &a, buf, INET_ADDRSTRLEN);
}

#ifdef CVM_HAVE_PRIVATE_NET

/* ---- netlink plumbing ------------------------------------------------------ */

struct nl {
	struct mnl_socket *sock;
	unsigned portid;
	unsigned seq;
};

static void nl_close(struct nl *nl)
{
	if (nl->sock)
		mnl_socket_close(nl->sock);
	nl->sock = NULL;
}

#define cleanup_nl __attribute__((cleanup(nl_close)))

static int nl_open(struct nl *nl, int bus)
{
	nl->sock = mnl_socket_open2(bus, SOCK_CLOEXEC);
	if (!nl->sock || mnl_socket_bind(nl->sock, 0, MNL_SOCKET_AUTOPID) < 0)
		return -1;
	nl->portid = mnl_socket_get_portid(nl->sock);
	nl->seq = (unsigned)time(NULL);
	return 0;
}

/* Open a netlink socket in the network namespace @netns_fd: a socket keeps
 * the namespace it was made in, so the thread only visits it. */
static int nl_open_in(struct nl *nl, int bus, int netns_fd)
{
	cleanup_close int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	int r, e;

	if (self < 0 || setns(netns_fd, CLONE_NEWNET) < 0)
		return -1;
	r = nl_open(nl, bus);
	e = errno;
	if (setns(self, CLONE_NEWNET) < 0)
		abort();        /* stuck in the workspace's namespace: nothing safe to do */
	errno = e;
	return r;
}

/* Run callback @cb on every reply to the request that ended at @seq,
 * until the ack or the end of a dump. 0, or -1 with errno. */
static int nl_replies(struct nl *nl, unsigned seq, mnl_cb_t cb, void *data)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	ssize_t n;
	int r;

	do {
		n = mnl_socket_recvfrom(nl->sock, buf, sizeof(buf));
		if (n < 0)
			return -1;
		r = mnl_cb_run(buf, (size_t)n, seq, nl->portid, cb, data);
	} while (r > MNL_CB_STOP);
	return r < 0 ? -1 : 0;
}

/* Send one request and wait for its ack (or its dump). */
static int nl_talk(struct nl *nl, struct nlmsghdr *h, mnl_cb_t cb, void *data)
{
	h->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	h->nlmsg_seq = ++nl->seq;
	if (mnl_socket_sendto(nl->sock, h, h->nlmsg_len) < 0)
		return -1;
	return nl_replies(nl, h->nlmsg_seq, cb, data);
}

static struct nlmsghdr *nl_msg(char *buf, uint16_t type, uint16_t flags)
{
	struct nlmsghdr *h = mnl_nlmsg_put_header(buf);
	h->nlmsg_type = type;
	h->nlmsg_flags = flags;
	return h;
}

/* ---- rtnetlink: links, addresses, routes ------------------------------------ */

static int link_set_up(struct nl *nl, const char *ifname)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *h = nl_msg(buf, RTM_NEWLINK, 0);
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(h, sizeof(*ifi));

	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_flags = IFF_UP;
	ifi->ifi_change = IFF_UP;
	mnl_attr_put_strz(h, IFLA_IFNAME, ifname);
	return nl_talk(nl, h, NULL, NULL);
}

static int link_delete(struct nl *nl, const char *ifname)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *h = nl_msg(buf, RTM_DELLINK, 0);
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(h, sizeof(*ifi));

	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(h, IFLA_IFNAME, ifname);
	return nl_talk(nl, h, NULL, NULL);
}

/* The veth pair, its inner end created straight in the workspace's
 * namespace (IFLA_NET_NS_FD in the peer's attributes). */
static int veth_create(struct nl *nl, const struct cvm_net *n, int netns_fd)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *h = nl_msg(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(h, sizeof(*ifi)), *peer;
	struct nlattr *info, *data, *pe;

	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(h, IFLA_IFNAME, CVM_NET_OUTER_IF);
	mnl_attr_put_u32(h, IFLA_MTU, n->mtu);
	info = mnl_attr_nest_start(h, IFLA_LINKINFO);
	mnl_attr_put_strz(h, IFLA_INFO_KIND, "veth");
	data = mnl_attr_nest_start(h, IFLA_INFO_DATA);
	pe = mnl_attr_nest_start(h, VETH_INFO_PEER);
	/* The peer's attributes start with an ifinfomsg of their own. */
	peer = mnl_nlmsg_get_payload_tail(h);
	memset(peer, 0, sizeof(*peer));
	h->nlmsg_len += MNL_ALIGN(sizeof(*peer));
	mnl_attr_put_strz(h, IFLA_IFNAME, CVM_NET_INNER_IF);
	mnl_attr_put_u32(h, IFLA_NET_NS_FD, (uint32_t)netns_fd);
	mnl_attr_put_u32(h, IFLA_MTU, n->mtu);
	mnl_attr_nest_end(h, pe);
	mnl_attr_nest_end(h, data);
	mnl_attr_nest_end(h, info);
	return nl_talk(nl, h, NULL, NULL);
}

static int addr_add(struct nl *nl, unsigned ifindex, uint32_t ip, unsigned prefix)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *h = nl_msg(buf, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE);
	struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(h, sizeof(*ifa));

	ifa->ifa_family = AF_INET;
	ifa->ifa_prefixlen = (unsigned char)prefix;
	ifa->ifa_index = ifindex;
	mnl_attr_put_u32(h, IFA_LOCAL, htonl(ip));
	mnl_attr_put_u32(h, IFA_ADDRESS, htonl(ip));
	return nl_talk(nl, h, NULL, NULL);
}

static int default_route_add(struct nl *nl, unsigned ifindex, uint32_t gateway)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *h = nl_msg(buf, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
	struct rtmsg *rt = mnl_nlmsg_put_extra_header(h, sizeof(*rt));

	rt->rtm_family = AF_INET;
	rt->rtm_table = RT_TABLE_MAIN;
	rt->rtm_protocol = RTPROT_BOOT;
	rt->rtm_scope = RT_SCOPE_UNIVERSE;
	rt->rtm_type = RTN_UNICAST;
	mnl_attr_put_u32(h, RTA_GATEWAY, htonl(gateway));
	mnl_attr_put_u32(h, RTA_OIF, ifindex);
	return nl_talk(nl, h, NULL, NULL);
}

static int default_route_cb(const struct nlmsghdr *h, void *data)
{
	const struct rtmsg *rt = mnl_nlmsg_get_payload(h);
	const struct nlattr *a;
	unsigned *oif = data;

	if (h->nlmsg_type != RTM_NEWROUTE || rt->rtm_dst_len != 0 ||
	    rt->rtm_table != RT_TABLE_MAIN || rt->rtm_type != RTN_UNICAST || *oif)
		return MNL_CB_OK;
	mnl_attr_for_each(a, h, sizeof(*rt))
		if (mnl_attr_get_type(a) == RTA_OIF && mnl_attr_validate(a, MNL_TYPE_U32) == 0)
			*oif = mnl_attr_get_u32(a);
	return MNL_CB_OK;
}

static int link_mtu_cb(const struct nlmsghdr *h, void *data)
{
	const struct nlattr *a;
	unsigned *mtu = data;

	if (h->nlmsg_type != RTM_NEWLINK)
		return MNL_CB_OK;
	mnl_attr_for_each(a, h, sizeof(struct ifinfomsg))
		if (mnl_attr_get_type(a) == IFLA_MTU && mnl_attr_validate(a, MNL_TYPE_U32) == 0)
			*mtu = mnl_attr_get_u32(a);
	return MNL_CB_OK;
}

/* The MTU of the interface that carries the outer default route: a pod's
 * network (an overlay, a VPN) often has less than 1500, and a larger MTU
 * inside would lose every full-size packet. 1500 without a default route. */
static int outer_mtu(struct nl *nl, unsigned *mtu)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *h = nl_msg(buf, RTM_GETROUTE, NLM_F_DUMP);
	struct rtmsg *rt = mnl_nlmsg_put_extra_header(h, sizeof(*rt));
	struct ifinfomsg *ifi;
	unsigned oif = 0;

	rt->rtm_family = AF_INET;
	*mtu = 1500;
	if (nl_talk(nl, h, default_route_cb, &oif) < 0)
		return -1;
	if (!oif)
		return 0;
	h = nl_msg(buf, RTM_GETLINK, 0);
	ifi = mnl_nlmsg_put_extra_header(h, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = (int)oif;
	return nl_talk(nl, h, link_mtu_cb, mtu);
}

/* ---- nftables: the table ip cvm ------------------------------------------- *
 *
 *   chain postrouting { type nat hook postrouting priority srcnat;
 *           ip saddr NET oifname != "cvm0" masquerade }
 *   chain prerouting { type filter hook prerouting priority raw;
 *           iifname "cvm0" ip saddr != NET drop }
 *
 * The second keeps root inside (who owns its network namespace and may
 * send anything) from spoofing outer addresses through the forwarding the
 * first needs. */

/* Append expression @name with @n u32 attributes (key, value pairs). */
static int add_expr(struct nftnl_rule *r, const char *name, size_t n, const uint32_t *kv)
{
	struct nftnl_expr *e = nftnl_expr_alloc(name);

	if (!e)
		return -1;
	for (size_t i = 0; i < n; i++)
		nftnl_expr_set_u32(e, (uint16_t)kv[2 * i], kv[2 * i + 1]);
	nftnl_rule_add_expr(r, e);
	return 0;
}

/* reg1 == / != @data (@len bytes) */
static int add_cmp(struct nftnl_rule *r, uint32_t op, const void *data, uint32_t len)
{
	struct nftnl_expr *e = nftnl_expr_alloc("cmp");

	if (!e)
		return -1;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
	nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
	nftnl_rule_add_expr(r, e);
	return 0;
}

/* ip saddr NET (or != NET) */
static int add_saddr_match(struct nftnl_rule *r, const struct cvm_net *n, uint32_t op)
{
	static const uint32_t load[] = { NFTNL_EXPR_PAYLOAD_BASE, NFT_PAYLOAD_NETWORK_HEADER,
		NFTNL_EXPR_PAYLOAD_OFFSET, 12, NFTNL_EXPR_PAYLOAD_LEN, 4,   /* saddr */
		NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1 };
	static const uint32_t and[] = { NFTNL_EXPR_BITWISE_SREG, NFT_REG_1,
		NFTNL_EXPR_BITWISE_DREG, NFT_REG_1, NFTNL_EXPR_BITWISE_LEN, 4 };
	uint32_t net = htonl(n->net), mask = htonl(~0u << (32 - n->prefix)), zero = 0;
	struct nftnl_expr *e;

	if (add_expr(r, "payload", 4, load) < 0 || !(e = nftnl_expr_alloc("bitwise")))
		return -1;
	for (size_t i = 0; i < 3; i++)
		nftnl_expr_set_u32(e, (uint16_t)and[2 * i], and[2 * i + 1]);
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, &mask, 4);
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, &zero, 4);
	nftnl_rule_add_expr(r, e);
	return add_cmp(r, op, &net, 4);
}

/* iifname/oifname (@key) == / != "cvm0" */
static int add_ifname_match(struct nftnl_rule *r, uint32_t key, uint32_t op)
{
	const uint32_t meta[] = { NFTNL_EXPR_META_KEY, key, NFTNL_EXPR_META_DREG, NFT_REG_1 };
	char ifname[IFNAMSIZ] = CVM_NET_OUTER_IF;

	if (add_expr(r, "meta", 2, meta) < 0)
		return -1;
	return add_cmp(r, op, ifname, sizeof(ifname));
}

static struct nftnl_rule *new_rule(const char *chain)
{
	struct nftnl_rule *r = nftnl_rule_alloc();

	if (!r)
		return NULL;
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, CVM_NET_TABLE);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_IPV4);
	return r;
}

/* @r, or NULL (and @r freed) when building it @failed. */
static struct nftnl_rule *rule_done(struct nftnl_rule *r, bool failed)
{
	if (r && failed) {
		nftnl_rule_free(r);
		return NULL;
	}
	return r;
}

static struct nftnl_rule *masquerade_rule(const struct cvm_net *n)
{
	struct nftnl_rule *r = new_rule("postrouting");

	return rule_done(r, r && (add_saddr_match(r, n, NFT_CMP_EQ) < 0 ||
				  add_ifname_match(r, NFT_META_OIFNAME, NFT_CMP_NEQ) < 0 ||
				  add_expr(r, "masq", 0, NULL) < 0));
}

static struct nftnl_rule *antispoof_rule(const struct cvm_net *n)
{
	static const uint32_t drop[] = { NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT,
					 NFTNL_EXPR_IMM_VERDICT, NF_DROP };
	struct nftnl_rule *r = new_rule("prerouting");

	return rule_done(r, r && (add_ifname_match(r, NFT_META_IIFNAME, NFT_CMP_EQ) < 0 ||
				  add_saddr_match(r, n, NFT_CMP_NEQ) < 0 ||
				  add_expr(r, "immediate", 2, drop) < 0));
}

static struct nftnl_chain *base_chain(const char *name, const char *type, uint32_t hook,
				      int32_t prio)
{
	struct nftnl_chain *c = nftnl_chain_alloc();

	if (!c)
		return NULL;
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, CVM_NET_TABLE);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, type);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, hook);
	nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, prio);
	return c;
}

/* The objects of one transaction, freed together. */
struct nft_objs {
	struct nftnl_table *table;
	struct nftnl_chain *chains[2];
	struct nftnl_rule *rules[2];
};

static void nft_objs_free(struct nft_objs *o)
{
	for (size_t i = 0; i < 2; i++) {
		if (o->chains[i])
			nftnl_chain_free(o->chains[i]);
		if (o->rules[i])
			nftnl_rule_free(o->rules[i]);
	}
	if (o->table)
		nftnl_table_free(o->table);
}

static int nft_objs_make(struct nft_objs *o, const struct cvm_net *n, bool whole)
{
	o->table = nftnl_table_alloc();
	if (!o->table)
		return -1;
	nftnl_table_set_str(o->table, NFTNL_TABLE_NAME, CVM_NET_TABLE);
	if (!whole)
		return 0;
	o->chains[0] = base_chain("postrouting", "nat", NF_INET_POST_ROUTING, 100);  /* srcnat */
	o->chains[1] = base_chain("prerouting", "filter", NF_INET_PRE_ROUTING, -300); /* raw */
	o->rules[0] = masquerade_rule(n);
	o->rules[1] = antispoof_rule(n);
	return o->chains[0] && o->chains[1] && o->rules[0] && o->rules[1] ? 0 : -1;
}

static struct nlmsghdr *batch_msg(struct mnl_nlmsg_batch *b, struct nl *nl, uint16_t type,
				  uint16_t flags)
{
	return nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(b), type, NFPROTO_IPV4, flags,
				     ++nl->seq);
}

/* One nf_tables transaction: @type on the table, and with NEWTABLE the
 * chains and rules too; all of it or nothing. Only the last message asks
 * for an ack; errors come back for any message. */
static int nft_batch(struct nl *nl, const struct cvm_net *n, uint16_t type)
{
	char buf[MNL_SOCKET_BUFFER_SIZE * 2];
	struct mnl_nlmsg_batch *b = mnl_nlmsg_batch_start(buf, sizeof(buf));
	bool whole = type == NFT_MSG_NEWTABLE;
	struct nft_objs o = { 0 };
	int ret = -1;

	if (!b || nft_objs_make(&o, n, whole) < 0) {
		errno = ENOMEM;
		goto out;
	}
	nftnl_batch_begin(mnl_nlmsg_batch_current(b), ++nl->seq);
	mnl_nlmsg_batch_next(b);
	nftnl_table_nlmsg_build_payload(batch_msg(b, nl, type, whole ? NLM_F_CREATE : NLM_F_ACK),
					o.table);
	mnl_nlmsg_batch_next(b);
	for (size_t i = 0; whole && i < 2; i++) {
		nftnl_chain_nlmsg_build_payload(batch_msg(b, nl, NFT_MSG_NEWCHAIN, NLM_F_CREATE),
						o.chains[i]);
		mnl_nlmsg_batch_next(b);
		nftnl_rule_nlmsg_build_payload(batch_msg(b, nl, NFT_MSG_NEWRULE, NLM_F_CREATE |
				NLM_F_APPEND | (i == 1 ? NLM_F_ACK : 0)), o.rules[i]);
		mnl_nlmsg_batch_next(b);
	}
	nftnl_batch_end(mnl_nlmsg_batch_current(b), ++nl->seq);
	mnl_nlmsg_batch_next(b);
	if (mnl_socket_sendto(nl->sock, mnl_nlmsg_batch_head(b), mnl_nlmsg_batch_size(b)) < 0)
		goto out;
	/* An error may answer any message of the batch: no seq check. */
	ret = nl_replies(nl, 0, NULL, NULL);
out:
	nft_objs_free(&o);
	if (b)
		mnl_nlmsg_batch_stop(b);
	return ret;
}

/* ---- the sysctl ------------------------------------------------------------ */

static int ip_forward(const char *value, int *was)
{
	cleanup_close int fd = open("/proc/sys/net/ipv4/ip_forward", O_RDWR | O_CLOEXEC);
	char old = 0;

	if (fd < 0)
		return -1;
	if (was && pread(fd, &old, 1, 0) == 1)
		*was = old == '1';
	return pwrite(fd, value, 1, 0) == 1 ? 0 : -1;
}

/* ---- up and down ----------------------------------------------------------- */

static int ifindex_cb(const struct nlmsghdr *h, void *data)
{
	const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(h);

	if (h->nlmsg_type == RTM_NEWLINK)
		*(unsigned *)data = (unsigned)ifi->ifi_index;
	return MNL_CB_OK;
}

static int ifindex_of(struct nl *nl, const char *ifname, unsigned *index)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *h = nl_msg(buf, RTM_GETLINK, 0);
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(h, sizeof(*ifi));

	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(h, IFLA_IFNAME, ifname);
	*index = 0;
	if (nl_talk(nl, h, ifindex_cb, index) < 0)
		return -1;
	return *index ? 0 : (errno = ENODEV, -1);
}

static int configure_inner(const struct cvm_net *n, int netns_fd, struct cvm_error *err)
{
	cleanup_nl struct nl nl = { 0 };
	unsigned ifindex;

	if (nl_open_in(&nl, NETLINK_ROUTE, netns_fd) < 0)
		return cvm_error_set(err, errno, "netlink in the workspace's namespace");
	if (link_set_up(&nl, "lo") < 0)
		return cvm_error_set(err, errno, "inside: lo up");
	if (ifindex_of(&nl, CVM_NET_INNER_IF, &ifindex) < 0 ||
	    addr_add(&nl, ifindex, n->inner_ip, n->prefix) < 0 ||
	    link_set_up(&nl, CVM_NET_INNER_IF) < 0)
		return cvm_error_set(err, errno, "inside: %s", CVM_NET_INNER_IF);
	if (default_route_add(&nl, ifindex, n->outer_ip) < 0)
		return cvm_error_set(err, errno, "inside: default route");
	return 0;
}

static int configure_outer(struct cvm_net *n, struct nl *nl, int netns_fd,
			   struct cvm_error *err)
{
	unsigned ifindex;

	if (outer_mtu(nl, &n->mtu) < 0)
		return cvm_error_set(err, errno, "find the outer default route's MTU");
	if (veth_create(nl, n, netns_fd) < 0)
		return cvm_error_set(err, errno, "create the veth pair %s/%s%s", CVM_NET_OUTER_IF,
				     CVM_NET_INNER_IF, errno == EEXIST ? " (is another cvm "
				     "running in this network namespace?)" : "");
	n->link_made = true;
	if (ifindex_of(nl, CVM_NET_OUTER_IF, &ifindex) < 0 ||
	    addr_add(nl, ifindex, n->outer_ip, n->prefix) < 0 ||
	    link_set_up(nl, CVM_NET_OUTER_IF) < 0)
		return cvm_error_set(err, errno, "outside: %s", CVM_NET_OUTER_IF);
	return 0;
}

static int masquerade(struct cvm_net *n, struct cvm_error *err)
{
	cleanup_nl struct nl nl = { 0 };

	if (nl_open(&nl, NETLINK_NETFILTER) < 0)
		return cvm_error_set(err, errno, "nftables netlink");
	/* A table left by a cvm killed before it could clean up. */
	if (nft_batch(&nl, n, NFT_MSG_DELTABLE) < 0 && errno != ENOENT)
		return cvm_error_set(err, errno, "nftables: remove the old table %s",
				     CVM_NET_TABLE);
	if (nft_batch(&nl, n, NFT_MSG_NEWTABLE) < 0)
		return cvm_error_set(err, errno, "nftables: masquerade rule in table ip %s%s",
				     CVM_NET_TABLE, errno == ENOENT || errno == EOPNOTSUPP ?
				     " (no nf_tables/nat support in this kernel?)" : "");
	n->table_made = true;
	if (ip_forward("1", &n->forward_was) < 0)
		return cvm_error_set(err, errno, "turn on net.ipv4.ip_forward");
	return 0;
}

int cvm_net_up(struct cvm_net *n, int netns_fd, struct cvm_error *err)
{
	cleanup_nl struct nl nl = { 0 };

	if (nl_open(&nl, NETLINK_ROUTE) < 0)
		return cvm_error_set(err, errno, "netlink");
	if (configure_outer(n, &nl, netns_fd, err) < 0 ||
	    configure_inner(n, netns_fd, err) < 0 || masquerade(n, err) < 0)
		return cvm_error_prefix(err, "private network");
	return 0;
}

void cvm_net_down(struct cvm_net *n)
{
	cleanup_nl struct nl nl = { 0 };

	if (n->table_made && nl_open(&nl, NETLINK_NETFILTER) == 0)
		nft_batch(&nl, n, NFT_MSG_DELTABLE);
	nl_close(&nl);
	/* The veth dies with the workspace's namespace, but that can outlive
	 * the workspace (a process holding it): remove our end now. */
	if (n->link_made && nl_open(&nl, NETLINK_ROUTE) == 0)
		link_delete(&nl, CVM_NET_OUTER_IF);
	if (n->forward_was == 0)
		ip_forward("0", NULL);
	n->table_made = n->link_made = false;
	n->forward_was = -1;
}

#else   /* built without libmnl/libnftnl */

int cvm_net_up(struct cvm_net *n, int netns_fd, struct cvm_error *err)
{
	(void)n;
	(void)netns_fd;
	return cvm_error_set(err, ENOTSUP, "private network: this cvm was built without it "
			     "(no libmnl/libnftnl at build time)");
}

void cvm_net_down(struct cvm_net *n)
{
	(void)n;
}

#endif

/* ---- /etc files ------------------------------------------------------------- */

/* The address of a "nameserver" line on loopback into @addr, else false. */
static bool loopback_nameserver(const char *line, char addr[static 64])
{
	struct in6_addr a6;
	struct in_addr a4;

	if (sscanf(line, " nameserver %63s", addr) != 1)
		return false;
	if (inet_pton(AF_INET, addr, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	return inet_pton(AF_INET6, addr, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

static int append(struct cvm_resolv *out, size_t *used, const char *text)
{
	size_t l = strlen(text);

	if (*used + l + 2 > sizeof(out->text))
		return -1;
	memcpy(out->text + *used, text, l);
	*used += l;
	if (l && text[l - 1] != '\n')
		out->text[(*used)++] = '\n';
	out->text[*used] = '\0';
	return 0;
}

int cvm_net_resolv_conf(const char *path, uint32_t relay_ip, struct cvm_resolv *out,
			struct cvm_error *err)
{
	cleanup_file FILE *f = fopen(path, "re");
	char line[512], addr[64], relay[80];
	size_t used = 0;

	memset(out, 0, sizeof(*out));
	if (!f)
		return errno == ENOENT ? 0 : cvm_error_set(err, errno, "%s", path);
	while (fgets(line, sizeof(line), f)) {
		const char *text = line;
		if (loopback_nameserver(line, addr)) {
			if (out->loopback[0] || !relay_ip) {
				out->dropped++;
				continue;
			}
			snprintf(out->loopback, sizeof(out->loopback), "%s", addr);
			snprintf(relay, sizeof(relay), "nameserver %s\n",
				 ip_str(relay_ip, (char[INET_ADDRSTRLEN]){ 0 }));
			text = relay;
		}
		if (append(out, &used, text) < 0)
			return cvm_error_set(err, EFBIG, "%s", path);
	}
	return 0;
}

void cvm_net_hosts(const struct cvm_net *n, const char *hostname, char *buf, size_t len)
{
	char in[INET_ADDRSTRLEN], out[INET_ADDRSTRLEN];

	snprintf(buf, len,
		 "127.0.0.1\tlocalhost\n"
		 "::1\tlocalhost ip6-localhost ip6-loopback\n"
		 "%s\t%s\n"
		 "%s\t%s\n",
		 ip_str(n->inner_ip, in), hostname, ip_str(n->outer_ip, out), CVM_NET_HOST_NAMES);
}
