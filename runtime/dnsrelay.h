/* A DNS relay for the private network, for outer containers whose resolver
 * is on loopback (Docker's embedded 127.0.0.11 on user-defined networks,
 * systemd-resolved's 127.0.0.53): the workspace's own loopback cannot reach
 * it, so cvm listens on the outer end of the veth (UDP port 53) and passes
 * each query on from the outer namespace, where the resolver (and Docker's
 * DNAT to its real port) is. UDP only: an answer too big for UDP comes back
 * truncated, and the TCP retry finds no relay. */
#ifndef CVM_DNSRELAY_H
#define CVM_DNSRELAY_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

#define CVM_DNSRELAY_SLOTS 256

struct cvm_dnsrelay {
	int listen_fd;          /* bound to the outer end's address, port 53 */
	uint32_t net, mask;     /* clients must come from here (host byte order) */
	int upstream_fd;        /* connected to the loopback resolver */
	uint16_t next;          /* round robin over the slots */
	struct {
		bool used;
		uint16_t id;            /* the ID sent upstream */
		uint16_t client_id;     /* the ID the client chose */
		uint32_t client_ip;     /* network byte order */
		uint16_t client_port;
		uint64_t sent_ms;
	} slots[CVM_DNSRELAY_SLOTS];
};

/* Listen on @listen_ip:53 (host byte order) for clients in @net/@prefix
 * and forward to @upstream (an IPv4 or IPv6 address, port 53). */
int cvm_dnsrelay_open(struct cvm_dnsrelay *r, uint32_t listen_ip, uint32_t net, unsigned prefix,
		      const char *upstream, struct cvm_error *err);

/* Call when listen_fd / upstream_fd is readable; they never block. */
void cvm_dnsrelay_on_query(struct cvm_dnsrelay *r);
void cvm_dnsrelay_on_answer(struct cvm_dnsrelay *r);

void cvm_dnsrelay_close(struct cvm_dnsrelay *r);

#endif
