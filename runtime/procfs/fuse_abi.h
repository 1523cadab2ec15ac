/* The few FUSE kernel ABI structs and numbers the /proc server speaks,
 * copied as local definitions: <linux/fuse.h> is not visible to musl-gcc,
 * and Debian 12's copy predates FUSE_NOTIFY_RESEND (Linux 6.9). */
#ifndef CVM_PROCFS_FUSE_ABI_H
#define CVM_PROCFS_FUSE_ABI_H

#include <stdint.h>

#define CVM_FUSE_MAJOR 7
#define CVM_FUSE_MINOR 40
#define CVM_FUSE_ROOT_ID 1

enum cvm_fuse_opcode {
	CVM_FUSE_LOOKUP = 1, CVM_FUSE_FORGET = 2, CVM_FUSE_GETATTR = 3, CVM_FUSE_OPEN = 14,
	CVM_FUSE_READ = 15, CVM_FUSE_STATFS = 17, CVM_FUSE_RELEASE = 18, CVM_FUSE_FLUSH = 25,
	CVM_FUSE_INIT = 26, CVM_FUSE_OPENDIR = 27, CVM_FUSE_READDIR = 28, CVM_FUSE_RELEASEDIR = 29,
	CVM_FUSE_ACCESS = 34, CVM_FUSE_INTERRUPT = 36, CVM_FUSE_DESTROY = 38,
	CVM_FUSE_BATCH_FORGET = 42,
};

#define CVM_FUSE_NOTIFY_RESEND 7
#define CVM_FUSE_INIT_EXT (1u << 30)
#define CVM_FUSE_HAS_RESEND_FLAGS2 (1u << 7)    /* FUSE_HAS_RESEND: 1ULL << 39 */
#define CVM_FOPEN_DIRECT_IO (1u << 0)           /* every read comes to us: fresh numbers */
#define CVM_FOPEN_NOFLUSH (1u << 5)
#define CVM_FOPEN_PASSTHROUGH (1u << 7)         /* reads go to a backing file, not to us */
#define CVM_FUSE_PASSTHROUGH_FLAGS2 (1u << 5)   /* FUSE_PASSTHROUGH: 1ULL << 37 (Linux 6.9) */
#define CVM_FUSE_UNIQUE_RESEND (1ULL << 63)     /* set on requests the kernel resent */

/* FUSE_DEV_IOC_BACKING_OPEN / _CLOSE: _IOW(229, 1, struct fuse_backing_map)
 * and _IOW(229, 2, uint32_t). */
struct cvm_fuse_backing_map {
	int32_t fd;
	uint32_t flags;
	uint64_t padding;
};
#define CVM_FUSE_DEV_IOC_BACKING_OPEN 0x4010e501u
#define CVM_FUSE_DEV_IOC_BACKING_CLOSE 0x4004e502u

struct cvm_fuse_in_header {
	uint32_t len, opcode;
	uint64_t unique, nodeid;
	uint32_t uid, gid, pid;
	uint16_t total_extlen, padding;
};

struct cvm_fuse_out_header {
	uint32_t len;
	int32_t error;
	uint64_t unique;
};

struct cvm_fuse_init_in {
	uint32_t major, minor, max_readahead, flags, flags2, unused[11];
};

struct cvm_fuse_init_out {
	uint32_t major, minor, max_readahead, flags;
	uint16_t max_background, congestion_threshold;
	uint32_t max_write, time_gran;
	uint16_t max_pages, map_alignment;
	uint32_t flags2, max_stack_depth;
	uint32_t unused[6];
};

struct cvm_fuse_attr {
	uint64_t ino, size, blocks, atime, mtime, ctime;
	uint32_t atimensec, mtimensec, ctimensec, mode, nlink, uid, gid, rdev, blksize, flags;
};

struct cvm_fuse_entry_out {
	uint64_t nodeid, generation, entry_valid, attr_valid;
	uint32_t entry_valid_nsec, attr_valid_nsec;
	struct cvm_fuse_attr attr;
};

struct cvm_fuse_attr_out {
	uint64_t attr_valid;
	uint32_t attr_valid_nsec, dummy;
	struct cvm_fuse_attr attr;
};

struct cvm_fuse_open_out {
	uint64_t fh;
	uint32_t open_flags, backing_id;
};

struct cvm_fuse_open_in {
	uint32_t flags, open_flags;
};

struct cvm_fuse_read_in {
	uint64_t fh, offset;
	uint32_t size, read_flags;
	uint64_t lock_owner;
	uint32_t flags, padding;
};

struct cvm_fuse_notify_resend {
	struct cvm_fuse_out_header h;
};

#endif
