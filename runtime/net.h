/* The workspace's private network: a veth pair from the outer container's
 * network namespace into the workspace's (owned by the workspace's user
 * namespace, so root inside can make bridges, veths and firewall rules of
 * its own), a default route through the outer end, and outbound NAT in the
 * outer namespace. Netlink through libmnl, the NAT rule through libnftnl:
 * the outer image need not have ip or nft. */
#ifndef CVM_NET_H
#define CVM_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define CVM_NET_OUTER_IF "cvm0"         /* the outer end of the veth */
#define CVM_NET_INNER_IF "eth0"         /* its end inside */
#define CVM_NET_TABLE "cvm"             /* the nftables table (family ip) */
#define CVM_NET_HOST_NAMES "host.cvm.internal host.docker.internal"

struct cvm_net {
	uint32_t net;           /* the network (host byte order) */
	unsigned prefix;        /* its length, at most 30 */
	uint32_t outer_ip;      /* net + 1: the outer end, the workspace's gateway */
	uint32_t inner_ip;      /* net + 2 */
	unsigned mtu;           /* of the outer interface with the default route */
	bool link_made;         /* for cvm_net_down: what to undo */
	bool table_made;
	int forward_was;        /* ip_forward before we set it, or -1 */
};

/* Parse "A.B.C.D/N" (host bits zero, N from 8 to 30). 0 or -1. */
int cvm_net_parse_cidr(const char *s, uint32_t *net, unsigned *prefix);

/* Fill the addresses of @n from @cidr (already valid). */
void cvm_net_init(struct cvm_net *n, uint32_t net, unsigned prefix);

/* Build it all for the network namespace @netns_fd (as outer root, in the
 * outer network namespace). On error, what was made stays recorded in @n
 * for cvm_net_down. */
int cvm_net_up(struct cvm_net *n, int netns_fd, struct cvm_error *err);

/* Remove what cvm_net_up made in the outer namespace; safe to call twice. */
void cvm_net_down(struct cvm_net *n);

/* The workspace's /etc/resolv.conf, from the outer one. */
struct cvm_resolv {
	char text[4096];
	char loopback[64];      /* the first nameserver on loopback, "" if none */
	unsigned dropped;       /* loopback nameservers left out */
};

/* Every line of the outer resolv.conf at @path as it is, except nameservers
 * on loopback, which the workspace's own loopback cannot reach: the first
 * becomes "nameserver @relay_ip" (a DNS relay there, see dnsrelay.h), the
 * rest are dropped; with @relay_ip 0 all of them are. A missing file gives
 * an empty one. */
int cvm_net_resolv_conf(const char *path, uint32_t relay_ip, struct cvm_resolv *out,
			struct cvm_error *err);

/* The workspace's /etc/hosts: localhost, @hostname at the inner address,
 * CVM_NET_HOST_NAMES at the outer one. */
void cvm_net_hosts(const struct cvm_net *n, const char *hostname, char *buf, size_t len);

#endif
