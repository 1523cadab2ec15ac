#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cleanup.h"
#include "dnsrelay.h"

#define DNS_HEADER 12
/* Packets handled per call: a workspace flooding the relay must not keep
 * PID 1's loop (signals, reaping) from its other work. The fds are polled
 * level-triggered, so what is left is handled on the next round. */
#define BATCH 32

static int udp_socket(int family)
{
	return socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

static int connect_upstream(const char *addr, struct cvm_error *err)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(53) };
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(53) };
	bool v4 = inet_pton(AF_INET, addr, &a4.sin_addr) == 1;
	cleanup_close int fd = -1;

	if (!v4 && inet_pton(AF_INET6, addr, &a6.sin6_addr) != 1)
		return cvm_error_set(err, EINVAL, "DNS relay: upstream %s", addr);
	fd = udp_socket(v4 ? AF_INET : AF_INET6);
	if (fd < 0 || connect(fd, v4 ? (struct sockaddr *)&a4 : (struct sockaddr *)&a6,
			      v4 ? sizeof(a4) : sizeof(a6)) < 0)
		return cvm_error_set(err, errno, "DNS relay: upstream %s", addr);
	return steal_fd(&fd);
}

int cvm_dnsrelay_open(struct cvm_dnsrelay *r, uint32_t listen_ip, uint32_t net, unsigned prefix,
		      const char *upstream, struct cvm_error *err)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(53),
				 .sin_addr = { htonl(listen_ip) } };
	cleanup_close int fd = udp_socket(AF_INET);

	memset(r, 0, sizeof(*r));
	r->listen_fd = r->upstream_fd = -1;
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		return cvm_error_set(err, errno, "DNS relay: listen on port 53");
	r->upstream_fd = connect_upstream(upstream, err);
	if (r->upstream_fd < 0)
		return -1;
	r->listen_fd = steal_fd(&fd);
	r->mask = prefix ? ~0u << (32 - prefix) : 0;
	r->net = net & r->mask;
	return 0;
}

/* The ID sent upstream: the slot in the low byte, a random high byte, so
 * that an answer names its slot and a stray one rarely matches. */
static uint16_t upstream_id(unsigned slot)
{
	uint8_t hi = 0;

	if (getrandom(&hi, 1, GRND_NONBLOCK) != 1)
		hi = (uint8_t)(slot * 151u + 7u);
	return (uint16_t)((hi << 8) | slot);
}

void cvm_dnsrelay_on_query(struct cvm_dnsrelay *r)
{
	unsigned char buf[4096];
	struct sockaddr_in from;
	socklen_t len = sizeof(from);
	ssize_t n;

	for (int i = 0; i < BATCH && (n = recvfrom(r->listen_fd, buf, sizeof(buf), 0,
						   (struct sockaddr *)&from, &len)) >= 0; i++) {
		unsigned slot = r->next++ % CVM_DNSRELAY_SLOTS;
		uint16_t id;

		len = sizeof(from);
		if (n < DNS_HEADER || (ntohl(from.sin_addr.s_addr) & r->mask) != r->net)
			continue;
		/* A slot still waiting after 256 newer queries is given up. */
		id = upstream_id(slot);
		r->slots[slot].used = true;
		r->slots[slot].id = id;
		r->slots[slot].client_id = (uint16_t)(buf[0] << 8 | buf[1]);
		r->slots[slot].client_ip = from.sin_addr.s_addr;
		r->slots[slot].client_port = from.sin_port;
		buf[0] = (unsigned char)(id >> 8);
		buf[1] = (unsigned char)id;
		if (send(r->upstream_fd, buf, (size_t)n, 0) < 0)
			r->slots[slot].used = false;
	}
}

void cvm_dnsrelay_on_answer(struct cvm_dnsrelay *r)
{
	unsigned char buf[4096];
	ssize_t n;

	for (int i = 0; i < BATCH && ((n = recv(r->upstream_fd, buf, sizeof(buf), 0)) >= 0 ||
				     errno == ECONNREFUSED); i++) {
		uint16_t id;
		unsigned slot;

		if (n < DNS_HEADER)
			continue;       /* also an ICMP error from the resolver: try the next */
		id = (uint16_t)(buf[0] << 8 | buf[1]);
		slot = id % CVM_DNSRELAY_SLOTS;
		if (!r->slots[slot].used || r->slots[slot].id != id)
			continue;
		struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = r->slots[slot].client_port,
					  .sin_addr = { r->slots[slot].client_ip } };
		buf[0] = (unsigned char)(r->slots[slot].client_id >> 8);
		buf[1] = (unsigned char)r->slots[slot].client_id;
		r->slots[slot].used = false;
		sendto(r->listen_fd, buf, (size_t)n, 0, (struct sockaddr *)&to, sizeof(to));
	}
}

void cvm_dnsrelay_close(struct cvm_dnsrelay *r)
{
	cvm_closep(&r->listen_fd);
	cvm_closep(&r->upstream_fd);
	r->listen_fd = r->upstream_fd = -1;
}
